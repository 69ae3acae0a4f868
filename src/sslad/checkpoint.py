"""Self-describing checkpoints: everything needed to score new images, loadable with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import torch

from sslad import __version__
from sslad.errors import SsladError
from sslad.files import load_torch_file
from sslad.models import MEAN, STD, NetConfig, PretextNet
from sslad.scoring import AnomalyScorer

FORMAT = "sslad-checkpoint"
FORMAT_VERSION = 2  # 2: per-pixel head and calibrated scorer; 1 is still read


def save_checkpoint(path: Path, model: PretextNet, config: dict, *, epoch: int, regen_index: int,
                    scorer_state: dict | None, threshold: float | None, extra: dict | None = None) -> None:
    """Write weights, model args, resolved config, preprocessing, fitted scorer and threshold."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sslad_version": __version__,
        "model_args": model.cfg.to_dict(),
        "state_dict": state,
        "config": config,
        "epoch": int(epoch),
        "regen_index": int(regen_index),
        "preprocessing": {"image_size": int(config["data"]["image_size"]), "mean": list(MEAN),
                          "std": list(STD), "resize": "bilinear", "input_range": "0..255 RGB"},
        "scorer": scorer_state,
        "threshold": None if threshold is None else float(threshold),
        "extra": extra or {},
    }
    tmp = Path(path).with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns (model in eval mode on ``device``, scorer or None, the checkpoint dict).
    A missing, foreign or corrupt file raises :class:`SsladError` with one line.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise SsladError(f"no checkpoint at {p}")
    ckpt = load_torch_file(p, "not a readable sslad checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SsladError(f"{p} is not an sslad checkpoint (foreign or corrupt file)")
    if int(ckpt.get("format_version", -1)) > FORMAT_VERSION:
        raise SsladError(f"{p} has checkpoint format {ckpt['format_version']}; this sslad reads up to {FORMAT_VERSION}")
    try:
        model = PretextNet(NetConfig.from_dict(ckpt["model_args"]))
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise SsladError(f"{p}: weights do not match the stored model args ({exc.__class__.__name__})") from exc
    model.to(device).eval()
    scorer = None
    if ckpt.get("scorer"):
        try:
            scorer = AnomalyScorer.from_state(ckpt["scorer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SsladError(f"{p}: the stored scorer is not readable ({exc})") from exc
        if scorer.threshold is None:  # format 1 kept the threshold beside the scorer
            scorer.threshold = ckpt.get("threshold")
    return model, scorer, ckpt


def load_for_scoring(run_dir: str | Path, device: str = "auto"):
    """A finished run's (model, fitted scorer, checkpoint) on the resolved ``device``, for eval and predict."""
    from sslad.runtime import resolve_device

    model, scorer, ckpt = load_checkpoint(Path(run_dir), resolve_device(device))
    if scorer is None:
        raise SsladError(f"{run_dir} holds no fitted scorer (interrupted run?); train it to the end first")
    return model, scorer, ckpt
