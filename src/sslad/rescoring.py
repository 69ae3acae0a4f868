"""``sslad rescore``: a finished run's scorer fitted again with other scoring settings, the network unchanged (the
module is not named rescore: that is the API function ``sslad.rescore``).

Training takes minutes to hours; the scorer — the densities, the maps' join, the image-score mode, the tiles, the
thresholds — takes seconds to minutes, and many of its settings are choices measured after training (``--map-weight
auto``, ``--map-layers``, ``--tile-pass``, ``--threshold-rule``). ``rescore`` runs exactly the end of ``sslad train``
(``training.fit_scorer`` on the run's own fit and held-out split, seed and synthetic held-out set, then the test
split) with the run's score settings overridden by the ones given, into a new run folder of the same kind
(``model.pt``, ``config.yaml``, ``metrics.json``, ``scores.csv``, ``report.png``) that ``eval``, ``predict``,
``export``, ``calibrate`` and ``distill`` read unchanged. The original run is not touched. Its figures sit beside
the new ones in ``metrics.json`` (``teacher_*``, as for a transfer) and in the last log line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sslad.config import DEFAULT_DEVICE

#: Score settings a re-fit cannot change: the held-out split (the thresholds' images, the synthetic held-out set's)
#: and the untrained baseline (a training's; score the ``untrained/`` run folder instead).
FIXED = ("holdout", "holdout_min", "baseline")


def rescore_run(run_dir: str | Path, out_dir: str | Path, score: dict | None = None, *, device: str = DEFAULT_DEVICE,
                overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Fit ``run_dir``'s network's scorer again with ``score`` (``ScoreConfig`` fields; None values: the run's) into
    ``out_dir`` and evaluate it on the run's test split; returns its metrics."""
    from sslad.config import RunConfig
    from sslad.distill import evaluate_transfer, open_teacher
    from sslad.errors import SsladError
    from sslad.training import choice_lines, fit_scorer

    score = {k: v for k, v in (score or {}).items() if v is not None}
    parsed = RunConfig.from_dict({"score": score}).score  # unknown keys, wrong types: one clear line each
    score = {k: getattr(parsed, k) for k in score}  # text read as its field's type, as in a config file
    if fixed := sorted(set(score) & set(FIXED)):
        raise SsladError(f"rescore keeps the run's held-out split and scores its own network: {', '.join(fixed)} "
                         "cannot change without training again")
    t = open_teacher(run_dir, out_dir, overwrite, seed=None, device=device, lr=None, score=score, validate=True)
    log(f"rescore: {t.run} ({t.cfg.train.arch}, {t.cfg.data.image_size} px), "
        + (", ".join(f"{k} {v}" for k, v in score.items()) or "the run's own settings"))
    scorer = fit_scorer(t.teacher, t.fit, t.holdout, t.cfg, t.renderer)
    for line in choice_lines(scorer):
        log(line)
    epochs = int(t.ckpt.get("epoch", 0))
    summary = {"rescored_from": str(t.run), "score_overrides": score, "epochs": epochs, "seed": t.cfg.train.seed}
    return evaluate_transfer(t, t.teacher, scorer, epochs, summary, {"rescore": score}, log,
                             against="the run as scored before")


__all__ = ["FIXED", "rescore_run"]
