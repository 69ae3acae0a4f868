"""The public Python API, on the CLI's own path: ``sslad.train``, ``sslad.load`` and the rest of ``__all__``.

    import sslad
    run = sslad.train({"data": {"path": "elpv:mono", "image_size": 128}, "train": {"epochs": 15}}, "runs/elpv",
                      student="resnet10_slim")   # the pretext network, then its student in runs/elpv/student
    det = sslad.load(run / "student")
    det.score(["cell.png"]).anomalous
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from sslad.config import DEFAULT_DEVICE, DistillConfig, RunConfig, load_yaml
from sslad.detector import Detection, Detector, load
from sslad.errors import SsladError


def _distill_config(student: str | DistillConfig | dict, **defaults) -> DistillConfig:
    if isinstance(student, str):
        student = DistillConfig(arch=student, **defaults)
    elif isinstance(student, dict):
        unknown = sorted(set(student) - {f.name for f in fields(DistillConfig)})
        if unknown:
            raise SsladError(f"unknown student setting(s) {', '.join(unknown)} "
                             f"(known: {', '.join(f.name for f in fields(DistillConfig))})")
        student = DistillConfig(**{**defaults, **student})
    if not isinstance(student, DistillConfig):
        raise SsladError(f"student must be an arch name, a DistillConfig or a dict, not {type(student).__name__}")
    return student.validate()


def train(config: RunConfig | dict | str | Path, out: str | Path, *, student: str | DistillConfig | dict | None = None,
          overwrite: bool = False, resume: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Train a run (what ``sslad train`` does) into ``out`` and return the run folder.

    Args:
        config: a :class:`~sslad.config.RunConfig`, a nested dict with sections data/synth/train/score
            (missing keys take their defaults), or the path of a YAML file of that shape.
        out: the run folder to write.
        student: then distil the run into this student (an arch name such as ``"resnet10_slim"``, a
            :class:`~sslad.config.DistillConfig` or a dict of its fields; seed and device default to the run's),
            written to ``out/student`` (what ``sslad train --student`` does; checked before training starts).
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
    dc = None if student is None else _distill_config(student, seed=config.train.seed, device=config.train.device)
    log = log or (lambda _msg: None)
    train_run(config, out, overwrite=overwrite, resume=resume, log=log)
    log(f"run folder: {out}")
    if dc is not None and int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 distils
        train_student(out, Path(out) / "student", dc, overwrite=overwrite, log=log)
    return Path(out)


def train_student(run: str | Path, out: str | Path, student: str | DistillConfig | dict | None = None, *,
                  image_size: int | None = None, overwrite: bool = False,
                  log: Callable[[str], None] | None = None) -> Path:
    """Distil the trained run in ``run`` into a new, equal or smaller network (what ``sslad distill`` does; not
    named ``distill``, which is the module :mod:`sslad.distill`); returns the student's run folder ``out``, which
    :func:`load` reads like any run.

    Args:
        student: an arch name, a :class:`~sslad.config.DistillConfig` or a dict of its fields (default: every
            default, ``resnet10_slim``).
        image_size: checked against the teacher's (the default: the teacher's).
        overwrite, log: as for :func:`train`.
    """
    from sslad.distill import distill_run

    dc = _distill_config(student if student is not None else {})
    log = log or (lambda _msg: None)
    distill_run(run, out, dc, image_size=image_size, overwrite=overwrite, log=log)
    log(f"student run folder: {out}")
    return Path(out)


def calibrate(run: str | Path, *, quantile: float | None = None, rule: str | None = None, data: str | None = None,
              category: str | None = None, device: str = DEFAULT_DEVICE,
              log: Callable[[str], None] | None = None) -> dict:
    """Set a finished run's thresholds again at another ``quantile`` or ``rule`` (``predictive``, ``tail``,
    ``quantile``; each default: the run's own) from its held-out good images, without training (what ``sslad
    calibrate`` does): scores and maps stay, ``model.pt`` keeps the previous values. ``data``: where the
    training images are now, when they moved (default: the training's path and category). Returns the images
    used, the previous and the new values."""
    from sslad.thresholds import calibrate_run

    return calibrate_run(run, quantile=quantile, rule=rule, data=data, category=category, device=device, log=log)


def rescore(run: str | Path, out: str | Path, *, device: str = DEFAULT_DEVICE, overwrite: bool = False,
            log: Callable[[str], None] | None = None, **score) -> Path:
    """Fit the trained run in ``run``'s scorer again with other scoring settings (``score``: fields of
    :class:`~sslad.config.ScoreConfig`, e.g. ``map_weight="auto"``, ``tile_pass="maps-once"``; the rest the run's),
    the network unchanged, into a new run folder ``out``, evaluated on the run's test split (what ``sslad rescore``
    does); returns ``out``, which :func:`load` reads like any run. ``overwrite``, ``log``: as for :func:`train`."""
    from sslad.rescoring import rescore_run

    log = log or (lambda _msg: None)
    rescore_run(run, out, score, device=device, overwrite=overwrite, log=log)
    log(f"run folder: {out}")
    return Path(out)


__all__ = ["Detection", "Detector", "calibrate", "load", "rescore", "train", "train_student"]
