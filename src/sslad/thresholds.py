"""``sslad calibrate``: a finished run's thresholds set again at another quantile or rule, without training (the
module is not named calibrate: that is the API function ``sslad.calibrate``).

The thresholds come from the good training images the run held out (``score.holdout``): the same split is drawn
again from the run's training data, the run's detector scores those images exactly as its fit did, and the
scorer reads the new quantile off them (``Scorer.recalibrate``). Network, density, standardisation and map scales
stay, so every score and map is unchanged; only the decisions move. ``model.pt`` is rewritten atomically with the
previous values kept in its scorer's ``calibration["previous"]``; ``config.yaml`` stays the training's record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sslad.config import DEFAULT_DEVICE, RunConfig
from sslad.errors import SsladError


def calibrate_run(run_dir: str | Path, *, quantile: float | None = None, rule: str | None = None,
                  data: str | None = None, category: str | None = None, device: str = DEFAULT_DEVICE,
                  log: Callable[[str], None] | None = None) -> dict:
    """Set ``run_dir``'s image and map thresholds at ``quantile`` by ``rule`` (each default: the run's own) from its
    held-out good images, read from ``data`` (default: the training's path and category). Returns the images
    used, the previous values and the new ones."""
    from sslad.checkpoint import load_for_scoring, run_folder
    from sslad.data import load_dataset, split_train
    from sslad.detector import Detector
    from sslad.files import atomic_torch_save
    from sslad.scoring import Scorer

    RunConfig().override(score={"threshold_quantile": quantile, "threshold_rule": rule}).validate()  # its messages
    log = log or (lambda _msg: None)
    run_dir = run_folder(run_dir)
    model, scorer, ckpt = load_for_scoring(run_dir, device)
    det = Detector.from_checkpoint(model, scorer, ckpt)
    cfg = RunConfig.from_dict(ckpt["config"])
    path, category = (cfg.data.path, cfg.data.category) if data is None else (data, category)
    train = load_dataset(path, category, det.image_size, device="cpu", splits=("train",)).train
    fit, holdout = split_train(train, cfg.score.holdout, cfg.score.holdout_min)
    use_holdout = holdout is not None and Scorer.calibrates_on_holdout(len(holdout))
    images, used, what = (holdout, "holdout", "held-out") if use_holdout else (fit, "fit", "fit")
    stored = det.scorer.calibration or {}  # "set" None: a format-1 checkpoint, which did not record it
    if stored.get("set") is not None and (stored.get("images") != len(images) or stored["set"] != used):
        raise SsladError(f"{path} gives {len(images)} {what} images where the run set its thresholds on "
                         f"{stored.get('images')} ({stored.get('set')}): not the training's data")
    scored = det.score(images.images, progress=f"score {used}")
    try:
        previous = det.scorer.recalibrate(scored.scores, scored.maps, quantile, rule)
    except ValueError as exc:
        raise SsladError(str(exc)) from exc
    if not det.scorer.is_finite():
        raise SsladError("the new thresholds are not finite; model.pt is left as it was")
    ckpt["scorer"] = det.scorer.state_dict()  # the checkpoint as read, weights on the CPU
    atomic_torch_save(ckpt, run_dir / "model.pt")
    s = det.scorer
    new = {"quantile": s.quantile, "rule": s.threshold_rule, "threshold": s.threshold,
           "pixel_threshold": s.pixel_threshold, "map_range": s.map_range}
    log(f"{run_dir}: thresholds from {len(images)} {what} good images, rule "
        f"{previous['rule']} -> {new['rule']}, quantile {previous['quantile']} -> {new['quantile']}: image "
        f"{previous['threshold']:.4g} -> {new['threshold']:.4g}"
        + (f", map {previous['pixel_threshold']:.4g} -> {new['pixel_threshold']:.4g}"
           if new["pixel_threshold"] is not None else "")
        + " (the previous values kept in model.pt)")
    if note := s.margin_note():
        log(f"note: {note}")
    return {"run_dir": str(run_dir), "images": len(images), "set": used, "previous": previous, "new": new}
