"""Checkpoints, loadable with ``torch.load(..., weights_only=True)``, both written atomically.

* ``model.pt`` (:func:`save_checkpoint`): a *finished* run, self-describing, everything needed
  to score new images; the one file ``eval``, ``predict`` and ``export`` read. Its ``extra`` keeps
  the training's summary: a run stopped while scoring its test split is scored by ``--resume``.
* ``train_state.pt`` (:func:`save_train_state`): an *unfinished* run's training state (weights,
  optimizer, position in the schedule, shuffle RNG), written at the end of every epoch and on
  SIGINT/SIGTERM; ``sslad train ... --resume`` continues from it and it is removed when the run
  finishes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sslad import __version__
from sslad.config import DEFAULT_DEVICE
from sslad.errors import SsladError
from sslad.files import atomic_torch_save, load_torch_file
from sslad.models import MEAN, STD, build_network, inference_layout
from sslad.scoring import Scorer

FORMAT = "sslad-checkpoint"
TRAIN_STATE = "train_state.pt"
TRAIN_STATE_FORMAT = "sslad-train-state"
FORMAT_VERSION = 3  # 3: thresholds only in the scorer, preprocessing only at the top; 1 and 2 still load


def save_checkpoint(path: Path, model: torch.nn.Module, config: dict, *, epoch: int, regen_index: int,
                    scorer_state: dict | None, extra: dict | None = None) -> None:
    """Write weights, model args, resolved config, preprocessing and the fitted scorer (which holds the
    thresholds: each fact is stored once)."""
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
        "extra": extra or {},
    }
    atomic_torch_save(ckpt, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns (model in eval mode on ``device``, scorer or None, the checkpoint dict).
    A missing, foreign or corrupt file raises :class:`SsladError` with one line.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / "model.pt").is_file() and (p / TRAIN_STATE).is_file():
            raise SsladError(f"{p} holds an unfinished run (no model.pt yet); finish it with sslad train ... --resume")
        p = p / "model.pt"
    if not p.is_file():
        raise SsladError(f"no checkpoint at {p}")
    ckpt = load_torch_file(p, "not a readable sslad checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SsladError(f"{p} is not an sslad checkpoint (foreign or corrupt file)")
    if int(ckpt.get("format_version", -1)) > FORMAT_VERSION:
        raise SsladError(f"{p} has checkpoint format {ckpt['format_version']}; this sslad reads up to {FORMAT_VERSION}")
    missing = [k for k in ("model_args", "state_dict", "config", "preprocessing") if not isinstance(ckpt.get(k), dict)]
    if missing or not isinstance(ckpt["preprocessing"].get("image_size"), int):
        raise SsladError(f"{p} is an incomplete sslad checkpoint (missing {', '.join(missing) or 'the image size'})")
    try:
        model = build_network(ckpt["model_args"])
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise SsladError(f"{p}: weights do not match the stored model args ({exc.__class__.__name__})") from exc
    if not all(bool(torch.isfinite(v).all()) for v in ckpt["state_dict"].values() if v.is_floating_point()):
        raise SsladError(f"{p} holds non-finite weights (a diverged training); retrain with a lower --lr")
    inference_layout(model.to(device).eval())
    scorer = None
    if ckpt.get("scorer"):
        try:
            scorer = Scorer.from_state(ckpt["scorer"], threshold=ckpt.get("threshold"))  # format 1: beside it
        except (KeyError, TypeError, ValueError) as exc:
            raise SsladError(f"{p}: the stored scorer is not readable ({exc})") from exc
        if not scorer.is_finite():
            raise SsladError(f"{p}: the stored scorer or threshold is not finite (a diverged training)")
    return model, scorer, ckpt


def run_folder(path: str | Path) -> Path:
    """The run folder named by ``path``: the folder itself, or the folder of ``RUN_DIR/model.pt``.

    A path that does not exist is one clear error here, before any output file is checked against it.
    """
    p = Path(path)
    if not p.exists():
        raise SsladError(f"run folder not found: {p}")
    return p.parent if p.is_file() else p


def load_for_scoring(run_dir: str | Path, device: str = DEFAULT_DEVICE):
    """A finished run's (model, fitted scorer, checkpoint) on the resolved ``device``, for eval and predict."""
    from sslad.runtime import resolve_device

    model, scorer, ckpt = load_checkpoint(Path(run_dir), resolve_device(device))
    if scorer is None:
        raise SsladError(f"{run_dir} holds no fitted scorer (interrupted run?); train it to the end first")
    return model, scorer, ckpt


def save_train_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, progress: dict,
                     config: dict, ranks: list[dict]) -> None:
    """The training state of an unfinished run (see the module docstring); ``ranks`` holds each process's
    own shuffle generator, torch RNG and sample order, so every rank of a torchrun run resumes exactly."""
    atomic_torch_save({
        "format": TRAIN_STATE_FORMAT, "sslad_version": __version__, "config": config, "progress": progress,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(),
        "world": len(ranks), "ranks": ranks,
    }, path)


def load_train_state(path: Path) -> dict:
    state = load_torch_file(path, "training state")
    if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
        raise SsladError(f"{path} is not an sslad training state (foreign or corrupt file)")
    return state

