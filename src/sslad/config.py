"""Typed, frozen configuration: one dataclass per concern, resolved into the run folder.

The CLI fills these from flags and an optional ``--config FILE.yaml`` (sections ``data``,
``synth``, ``train``, ``score``); the resolved result is written as ``config.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sslad.errors import SsladError

#: Smallest image side the pretext geometry supports (scar patches are scaled from 256 px).
MIN_IMAGE_SIZE = 32


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are decoded."""

    path: str = "elpv"
    category: str | None = None
    image_size: int = 256


@dataclass(frozen=True)
class SynthConfig:
    """The pretext task: how the synthetic dataset is sampled and rendered."""

    backend: str = "torch"  # torch | dali
    variants: int = 1  # synthetic samples per class per training image, per regeneration
    regen_every: int = 1  # epochs between regenerations
    scar: str = "line"  # line | patch (line measured better at 64 px: README)
    jitter: float = 0.1  # colour jitter strength (brightness, contrast, saturation, hue)
    translate: float = 0.0625  # whole-image translation, fraction of the image side


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the pretext classifier."""

    epochs: int = 30
    batch_size: int = 96
    optimizer: str = "adam"  # adam | sgd (the CutPaste paper's: momentum 0.9, lr 0.03)
    lr: float | None = None  # None: 3e-4 for adam, 0.03 for sgd
    momentum: float = 0.9
    weight_decay: float = 3e-5
    arch: str = "resnet18"  # resnet18 | resnet50
    weights: str = "none"  # none | imagenet | PATH
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0


def default_lr(optimizer: str) -> float:
    return 3e-4 if optimizer == "adam" else 0.03


@dataclass(frozen=True)
class ScoreConfig:
    """The density model fitted on embeddings of good training images."""

    scorer: str = "gde"  # gde | knn
    knn_k: int = 5


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run."""

    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def validate(self) -> RunConfig:
        """Raise :class:`SsladError` with one clear line for any impossible setting."""
        d, s, t, c = self.data, self.synth, self.train, self.score
        if d.image_size < MIN_IMAGE_SIZE:
            raise SsladError(
                f"--image-size {d.image_size} is too small for the pretext patches; use at least "
                f"{MIN_IMAGE_SIZE}"
            )
        checks = [
            (s.backend in ("torch", "dali"), f"unknown backend {s.backend!r} (torch|dali)"),
            (s.scar in ("line", "patch"), f"unknown scar style {s.scar!r} (line|patch)"),
            (s.variants >= 1, "--variants must be at least 1"),
            (s.regen_every >= 1, "--regen-every must be at least 1"),
            (0 <= s.jitter <= 0.5, "jitter must lie in [0, 0.5]"),
            (0 <= s.translate <= 0.25, "translate must lie in [0, 0.25]"),
            (t.epochs >= 1, "--epochs must be at least 1"),
            (t.batch_size >= 3, "--batch-size must be at least 3 (one image per class)"),
            (t.optimizer in ("adam", "sgd"), f"unknown optimizer {t.optimizer!r} (adam|sgd)"),
            (t.lr is None or t.lr > 0, "--lr must be positive"),
            (t.arch in ("resnet18", "resnet50"), f"unknown arch {t.arch!r} (resnet18|resnet50)"),
            (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:"),
             f"unknown device {t.device!r} (auto|cpu|cuda)"),
            (c.scorer in ("gde", "knn"), f"unknown scorer {c.scorer!r} (gde|knn)"),
            (c.knn_k >= 1, "--knn-k must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise SsladError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from a (possibly partial) nested dict; unknown keys are an error."""
        kinds = {"data": DataConfig, "synth": SynthConfig, "train": TrainConfig, "score": ScoreConfig}
        out = {}
        for name, value in (raw or {}).items():
            if name not in kinds:
                raise SsladError(f"unknown config section {name!r} (expected {', '.join(kinds)})")
            kind = kinds[name]
            known = {f.name for f in fields(kind)}
            bad = set(value or {}) - known
            if bad:
                raise SsladError(f"unknown key(s) in config section {name!r}: {', '.join(sorted(bad))}")
            out[name] = kind(**(value or {}))
        return cls(**out)

    def override(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some fields of some sections replaced (``None`` values are ignored)."""
        cfg = self
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                cfg = replace(cfg, **{name: replace(getattr(cfg, name), **values)})
        return cfg


def load_yaml(path: str | Path) -> RunConfig:
    """Read a config file written by ``save_yaml`` or by hand."""
    p = Path(path)
    if not p.is_file():
        raise SsladError(f"config file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SsladError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise SsladError(f"config file {p} must hold a mapping of sections")
    try:
        return RunConfig.from_dict(raw or {})
    except TypeError as exc:  # wrong value shapes
        raise SsladError(f"config file {p}: {exc}") from exc


def save_yaml(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


__all__ = [
    "DataConfig",
    "SynthConfig",
    "TrainConfig",
    "ScoreConfig",
    "RunConfig",
    "load_yaml",
    "save_yaml",
    "MIN_IMAGE_SIZE",
]
