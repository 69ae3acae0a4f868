"""The public Python API, on the CLI's own path: ``sslad.train`` and ``sslad.load``.

    import sslad
    run = sslad.train({"data": {"path": "elpv:mono", "image_size": 128}, "train": {"epochs": 15}}, "runs/elpv")
    det = sslad.load(run)
    det.score(["cell.png"]).anomalous
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sslad.config import RunConfig, load_yaml
from sslad.detector import Detection, Detector, load
from sslad.errors import SsladError


def train(config: RunConfig | dict | str | Path, out: str | Path, *, overwrite: bool = False, resume: bool = False,
          log: Callable[[str], None] | None = None) -> Path:
    """Train a run (what ``sslad train`` does) into ``out`` and return the run folder.

    Args:
        config: a :class:`~sslad.config.RunConfig`, a nested dict with sections data/synth/train/score
            (missing keys take their defaults), or the path of a YAML file of that shape.
        out: the run folder to write.
        overwrite: replace a run already in ``out`` (only the files sslad writes are removed).
        resume: continue the interrupted run in ``out`` from its training state.
        log: where progress lines go (default: nowhere).
    """
    from sslad.training import train_run

    if isinstance(config, (str, Path)):
        config = load_yaml(config)
    elif isinstance(config, dict):
        config = RunConfig.from_dict(config)
    if not isinstance(config, RunConfig):
        raise SsladError(f"config must be a RunConfig, a dict or a YAML path, not {type(config).__name__}")
    if overwrite and resume:
        raise SsladError("--overwrite and --resume exclude each other")
    train_run(config, out, overwrite=overwrite, resume=resume, log=log or (lambda _msg: None))
    return Path(out)


__all__ = ["Detection", "Detector", "load", "train"]
