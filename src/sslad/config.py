"""Typed, frozen configuration: one dataclass per concern, the one list of choices and defaults.

The CLI fills these from flags and an optional ``--config FILE.yaml`` (sections ``data``,
``synth``, ``train``, ``score``); its help text reads the defaults and choices from here. The
*resolved* configuration (every default filled in, e.g. the learning rate) is written to the
run folder as ``config.yaml``, so a run folder reproduces itself even if a default changes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sslad.errors import SsladError

#: Smallest image side the pretext geometry supports (scar patches are scaled from 256 px).
MIN_IMAGE_SIZE = 32
#: Largest image side accepted (a ResNet-18 step on 96 such images needs ~100 GB); memory for the
#: decoded images is also checked against what the machine has, before decoding.
MAX_IMAGE_SIZE = 4096

#: Every enumerated choice, once. The CLI's ``click.Choice`` lists and validation read these.
BACKENDS = ("torch", "dali")
SCARS = ("line", "patch")
BLOB_SIZES = ("uniform", "log")  # how blob box areas spread from 2 % up to --blob-area (log: as many per doubling)
COLORS = ("auto", "gray", "rgb")
OPTIMIZERS = ("adam", "sgd")
ARCHS = ("resnet18", "resnet50")
DENSITIES = ("gde", "knn")  # densities fitted on the embeddings (sslad.scoring.density)
IMAGE_SCORES = ("auto", "embedding", "map", "both")  # auto: the best on synthetic anomalies of held-out images
#: What the image density is fitted on: the trunk's pooled last map (the CutPaste paper's), or that and the
#: global maximum of the patch descriptors (pooled+peak: a local defect moves a maximum, not a mean).
EMBEDDINGS = ("pooled", "pooled+peak")
DECODERS = ("unet", "light")  # per-pixel heads: U-Net decoder over the trunk, or the light layer1-3 head
SEG_LOSSES = ("focal", "balanced", "dice", "bce")  # per-pixel losses made for tiny positive shares (bce: plain)
TRUNK_NORMS = ("batch", "frozen")  # the trunk's BatchNorm in training: batch statistics, or kept at the first ones
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
EXPORT_FORMATS = ("onnx", "torchscript")

#: Defaults of the commands that read runs (eval, predict, export, preview) and of the renderers.
DEFAULT_DEVICE = "auto"
PREVIEW_COUNT = 24
RENDER_BATCH = 256  # images per renderer call (torch chunks, DALI iterations) on the CPU
#: On CUDA, images per renderer call come from a pixel budget: 2,048 at 256 px. Measured on an H200
#: (gpu_h200_check_session31.json): one regeneration of configs/gpu.yaml's pretext over 684 images at 256 px took
#: 0.083 s at 2,048 per call against 0.31 s at 256 (torch, peak 2.6 GB); DALI's graph 14,000 img/s against 7,700.
GPU_RENDER_PIXELS = 2048 * 256 * 256

#: Default learning rate per optimizer (Adam measured in docs/results.md; SGD is the CutPaste paper's).
DEFAULT_LR = {"adam": 3e-4, "sgd": 0.03}


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are decoded."""

    path: str = "elpv"
    category: str | None = None
    image_size: int = 256


@dataclass(frozen=True)
class SynthConfig:
    """The pretext task: how the synthetic dataset is sampled and rendered."""

    backend: str = "torch"
    variants: int = 1  # synthetic samples per class per training image, per regeneration
    regen_every: int = 1  # epochs between regenerations
    scar: str = "line"  # line measured better than patch at 64 px (docs/results.md)
    jitter: float = 0.1  # colour jitter strength (brightness, contrast, saturation, hue)
    translate: float = 0.0625  # whole-image translation, fraction of the image side
    color: str = "auto"  # colour space of the synthetic anomalies; auto: gray for grayscale data
    irregular: float = 0.5  # share of class-1/2 rows drawn as irregular soft blobs (blend, alter)
    other_source: float = 0.5  # share of blend rows whose content comes from another training image
    cracks: float = 0.25  # share of the non-blob class-2 rows drawn as cracks (thin meandering lines)
    border: float = 0.0  # share of the class-1/2 anomalies moved to touch a side of the image
    blob_area: float = 0.15  # largest share of the image a blob's box covers (cut-paste's own 15 %)
    blob_sizes: str = "uniform"  # the blob box's area: uniform from 2 % to blob_area, or log-uniform (small ones kept)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the pretext classifier, and where it runs."""

    epochs: int = 30
    batch_size: int = 96
    optimizer: str = "adam"  # sgd is the CutPaste paper's (momentum 0.9)
    lr: float | None = None  # None: DEFAULT_LR[optimizer]; resolved before it is saved
    warmup: float = 0.0  # share of the optimiser steps with a linear learning-rate warm-up before the cosine decay
    trunk_lr: float = 1.0  # the trunk's learning rate as a factor on lr, in (0, 10] (heads and decoder keep lr)
    trunk_norm: str = "batch"  # frozen: the trunk's BatchNorm statistics stay the first ones (scale, shift learn)
    momentum: float = 0.9
    weight_decay: float = 3e-5
    arch: str = "resnet18"
    weights: str = "none"  # none | imagenet | PATH
    seg_weight: float = 1.0  # weight of the per-pixel loss on the synthetic masks; 0: no per-pixel head
    decoder: str = "unet"  # the per-pixel head
    seg_width: int = 64  # the per-pixel head's width; the U-Net decoder's widths scale from it (2w, 2w, w, w/2, w/2)
    seg_loss: str = "focal"  # the per-pixel loss
    min_steps: int = 0  # a budget in optimiser steps: small sets get more epochs (epochs = max(epochs, needed))
    crop: int = 0  # train on crop x crop windows of the image_size images (0: whole images); scoring sees it all
    precision: str = "auto"  # auto: bf16 autocast on CUDA and on CPUs with native bf16, fp32 otherwise
    device: str = DEFAULT_DEVICE
    seed: int = 0


@dataclass(frozen=True)
class ScoreConfig:
    """The density model fitted on embeddings of good training images."""

    density: str = "gde"  # gde (Gaussian, the CutPaste paper's) or knn
    knn_k: int = 5
    embedding: str = "pooled+peak"  # pooled: layer4 averaged; +peak: and the patch descriptors' maximum
    image_score: str = "embedding"  # or map, both, auto (the best AUROC on synthetic anomalies of held-out images)
    threshold_quantile: float = 0.99  # of the held-out good images' scores
    threshold_rule: str = "predictive"  # how that quantile is read off them: see THRESHOLD_RULES
    holdout: float = 0.1  # share of train/good kept out of training and the fit, for the thresholds
    holdout_min: int = 10  # ... but at least this many (at most a quarter of train/good)
    views_below: int = 50  # threshold_rule quantile: fewer held-out images than this, their augmented views join them
    auto_margin: float = 0.01  # auto image score: a more complex mode must beat a simpler one by this much AUROC
    tile: int = 0  # score in overlapping tiles of this side (embedding score: the worst tile's); 0: whole images
    tile_overlap: float = 0.5  # the least share of a tile its neighbours overlap by (fewer passes when lower)
    tile_pass: str = "each"  # how tiles are scored (TILE_PASSES): each in a pass of its own, once, maps-once
    whole_view: int = 0  # also embed the whole image at this side, a density of its own, joined; 0: off
    map: str = "both"  # seg (the per-pixel head), density (a patch density's) or both averaged
    map_weight: float | str = 0.5  # map: both: the per-pixel head's share of the join (the density's 1 - it) or
    # auto: of MAP_WEIGHT_CHOICES, the one whose maps outline probe anomalies on the held-out images best
    patch_density: str = "gauss"  # what makes the density maps: gauss (one Gaussian) or knn (a coreset memory)
    patch_bank: int = 10_000  # knn: descriptors kept in the memory (a greedy coreset of the sampled locations)
    map_layers: str = "2,3"  # the patch density's trunk stages: 2,3 (1/8 grid), 3,4 (1/16), 2,3,4, or auto
    baseline: bool = False  # also fit and score the untrained network (the first weights) the same way, reported
    inference_precision: str = "fp32"  # what scoring computes in: fp32 (exactly the exported graph's scores), bf16
    # (about 2x faster on a CPU with native bf16, the same AUROCs: docs/results.md), auto (bf16 where native)


#: How the thresholds read the quantile off the held-out good images' scores: the bound a new good score passes
#: with probability 1 - quantile when their top fifth is an exponential tail, at any number of them (predictive:
#: ``sslad.scoring.metrics.predictive_threshold``, 0.9), that tail's quantile with its fitted scale (tail: the rule
#: of 0.8, low on few images), or their empirical quantile, joined below ``views_below`` held-out images by their
#: augmented views' scores (quantile: the rule before 0.8).
THRESHOLD_RULES = ("predictive", "tail", "quantile")
STUDENT_ARCHS = ("resnet18", "resnet10", "resnet10_slim", "mobilenet_v3_small")  # the downstream transfer's trunks
#: A run's anomaly maps: the per-pixel head's (seg), a patch density's over the trunk's mid-level features
#: (density), or the two averaged on their held-out scales (both).
SCORE_MAPS = ("seg", "density", "both")
#: What makes the density maps: one Gaussian over the good patch descriptors (gauss) or a coreset memory of them
#: and the nearest one's distance (knn, PatchCore's); ``sslad.scoring.density.PATCH_TYPES``.
PATCH_DENSITIES = ("gauss", "knn")
#: The trunk stages whose maps make the density maps' patch descriptors (at the first one's grid): layer2-3 (1/8
#: of the side, PatchCore's), layer3-4 (1/16: a wider context per location) or all three; auto: the one whose maps
#: outline the synthetic anomalies on the held-out images best (``training.choose_map_layers``).
MAP_LAYER_CHOICES = ("2,3", "3,4", "2,3,4")
MAP_LAYERS = ("auto", *MAP_LAYER_CHOICES)
#: ``map_weight: auto``'s candidates, the even join first (a tie keeps it), then the nearer ones; the one whose
#: joined maps have the best AUPRO on probe anomalies (``sslad.synth.probes``) on the held-out good images' views
#: is kept (``training.choose_map_weight``).
MAP_WEIGHT_CHOICES = (0.5, 0.25, 0.75, 0.0, 1.0)
#: How tiles are scored: each in a network pass of its own (its embedding what the network saw in training,
#: maps stitched), or all from one pass over the whole image (each tile's embedding pooled over its window of the
#: trunk's maps, the maps the whole image's): about (S/P)^2 tiles' work instead of one pass per tile; or each
#: tile's embedding from a pass of its own and the maps from one pass over the whole image (maps-once: each's image
#: scores, once's maps, one pass more than each).
TILE_PASSES = ("each", "once", "maps-once")
#: The largest ``score.tile_overlap``: a step of a quarter tile, 4x the passes per side of none.
MAX_TILE_OVERLAP = 0.75
#: The student run's map: its own per-pixel head (seg: the small detector), the student-teacher discrepancy
#: (distill: teacher and student both kept), or whichever scores the synthetic held-out anomalies better (auto).
MAP_SOURCES = ("seg", "distill", "auto")
#: What a student learns to minimise: the squared error of the teacher's maps standardised per channel, or the
#: per-location cosine distance (0.3).
DISTILL_LOSSES = ("mse", "cosine")
#: Where a student's trunk starts: the teacher's weights where the architectures share them, or random.
DISTILL_INITS = ("teacher", "scratch")


@dataclass(frozen=True)
class DistillConfig:
    """The downstream transfer (``sslad distill``): what it adds to its teacher's config (stored in the
    student's checkpoint, ``extra.distill``)."""

    arch: str = "resnet10_slim"  # a fifth of the teacher's weights, its image AUROC (docs/results.md)
    epochs: int = 10
    min_steps: int = 200  # small sets still get this many optimiser steps
    lr: float = 1e-3  # Adam, one cosine cycle
    seed: int = 0
    device: str = DEFAULT_DEVICE
    seg_weight: float = 1.0  # weight of the per-pixel mimicry (the student's own maps)
    embed_weight: float = 0.0  # weight of the pooled-embedding error in the teacher density's metric
    map: str = "seg"  # seg | distill | auto (see MAP_SOURCES)
    loss: str = "mse"  # mse | cosine (see DISTILL_LOSSES)
    init: str = "teacher"  # teacher | scratch (see DISTILL_INITS)

    def validate(self) -> DistillConfig:
        checks = [(self.arch in STUDENT_ARCHS, f"unknown student arch {self.arch!r} ({'|'.join(STUDENT_ARCHS)})"),
                  (self.epochs >= 1, "--epochs must be at least 1"),
                  (self.min_steps >= 0, "--min-steps cannot be negative"),
                  (0 < self.lr < math.inf, "--lr must be a positive, finite number"),
                  (self.seg_weight >= 0, "seg_weight cannot be negative"),
                  (0 <= self.embed_weight < math.inf, "--embed-weight must be a non-negative, finite number"),
                  (self.map in MAP_SOURCES, f"unknown map source {self.map!r} ({'|'.join(MAP_SOURCES)})"),
                  (self.loss in DISTILL_LOSSES,
                   f"unknown distillation loss {self.loss!r} ({'|'.join(DISTILL_LOSSES)})"),
                  (self.init in DISTILL_INITS, f"unknown student init {self.init!r} ({'|'.join(DISTILL_INITS)})")]
        for ok, msg in checks:
            if not ok:
                raise SsladError(msg)
        return self


#: The trunk stage from which ``sslad finetune`` trains (the earlier ones stay frozen).
FINETUNE_FROM = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class FinetuneConfig:
    """The equal model fine-tuned on the real good images (``sslad finetune``): the mean-shifted contrastive
    objective on the pooled embedding (stored in the run's checkpoint, ``extra.finetune``)."""

    epochs: int = 20
    min_steps: int = 200  # small sets still get this many optimiser steps
    lr: float = 1e-5  # Adam, one cosine cycle: a small step keeps the pretext features (the recipe's 1e-5)
    batch_size: int = 64  # images per step (two views each)
    temperature: float = 0.25
    angular: float = 0.0  # weight of the angular centre loss (views pulled to the normal mean)
    train_from: str = "layer3"  # this stage and the deeper ones learn; the stem and earlier stages stay frozen
    seed: int = 0
    device: str = DEFAULT_DEVICE

    def validate(self) -> FinetuneConfig:
        checks = [(self.epochs >= 1, "--epochs must be at least 1"),
                  (self.min_steps >= 0, "--min-steps cannot be negative"),
                  (0 < self.lr < math.inf, "--lr must be a positive, finite number"),
                  (self.batch_size >= 2, "--batch-size must be at least 2 (the views of other images are the "
                                         "contrast)"),
                  (0 < self.temperature < math.inf, "--temperature must be a positive, finite number"),
                  (0 <= self.angular < math.inf, "--angular must be a non-negative, finite number"),
                  (self.train_from in FINETUNE_FROM,
                   f"unknown stage {self.train_from!r} ({'|'.join(FINETUNE_FROM)})")]
        for ok, msg in checks:
            if not ok:
                raise SsladError(msg)
        return self


SECTIONS = {"data": DataConfig, "synth": SynthConfig, "train": TrainConfig, "score": ScoreConfig}


def default(section: str, name: str) -> Any:
    """The default value of one field (for help texts)."""
    return next(f.default for f in fields(SECTIONS[section]) if f.name == name)


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
        if d.image_size > MAX_IMAGE_SIZE:
            raise SsladError(f"--image-size {d.image_size} is too large; use at most {MAX_IMAGE_SIZE}")

        def one_of(value, choices, what):
            return value in choices, f"unknown {what} {value!r} ({'|'.join(choices)})"

        checks = [
            one_of(s.backend, BACKENDS, "backend"),
            one_of(s.scar, SCARS, "scar style"),
            one_of(s.color, COLORS, "colour space"),
            one_of(s.blob_sizes, BLOB_SIZES, "blob size law"),
            (s.variants >= 1, "--variants must be at least 1"),
            (s.regen_every >= 1, "--regen-every must be at least 1"),
            (0 <= s.jitter <= 0.5, "jitter must lie in [0, 0.5]"),
            (0 <= s.translate <= 0.25, "translate must lie in [0, 0.25]"),
            (0 <= s.irregular <= 1, "--irregular must lie in [0, 1]"),
            (0 <= s.other_source <= 1, "--other-source must lie in [0, 1]"),
            (0 <= s.cracks <= 1, "--cracks must lie in [0, 1]"),
            (0 <= s.border <= 1, "--border must lie in [0, 1]"),
            (0.02 <= s.blob_area <= 1, "--blob-area must lie in [0.02, 1] (the smallest blob box is 2 % of the image)"),
            (t.epochs >= 0, "--epochs cannot be negative (0: the untrained baseline)"),
            (t.batch_size >= 3, "--batch-size must be at least 3 (one image per class)"),
            one_of(t.optimizer, OPTIMIZERS, "optimizer"),
            (t.lr is None or 0 < t.lr < math.inf, "--lr must be a positive, finite number"),
            one_of(t.arch, ARCHS, "arch"),
            (t.device in DEVICES or t.device.startswith("cuda:"),
             f"unknown device {t.device!r} ({'|'.join(DEVICES)})"),
            one_of(t.precision, PRECISIONS, "precision"),
            (t.seg_weight >= 0, "--seg-weight cannot be negative"),
            one_of(t.decoder, DECODERS, "decoder"),
            (8 <= t.seg_width <= 512, "--seg-width must lie in [8, 512]"),
            one_of(t.seg_loss, SEG_LOSSES, "per-pixel loss"),
            one_of(t.trunk_norm, TRUNK_NORMS, "trunk norm"),
            (t.min_steps >= 0, "--min-steps cannot be negative"),
            (0 <= t.warmup < 1, "--warmup is a share of the steps, in [0, 1)"),
            (0 < t.trunk_lr <= 10, "--trunk-lr is a factor on --lr, in (0, 10]"),
            (t.crop == 0 or MIN_IMAGE_SIZE <= t.crop <= d.image_size,
             f"--crop must be 0 (whole images) or lie in [{MIN_IMAGE_SIZE}, --image-size {d.image_size}]"),
            one_of(c.density, DENSITIES, "density"),
            (c.knn_k >= 1, "--knn-k must be at least 1"),
            one_of(c.embedding, EMBEDDINGS, "embedding"),
            one_of(c.image_score, IMAGE_SCORES, "image score"),
            one_of(c.map, SCORE_MAPS, "map source"),
            one_of(c.patch_density, PATCH_DENSITIES, "patch density"),
            one_of(c.map_layers, MAP_LAYERS, "map layers"),
            (c.map_weight == "auto" or (not isinstance(c.map_weight, str) and 0 <= c.map_weight <= 1),
             "--map-weight is the per-pixel head's share of the joined map, in [0, 1], or auto"),
            (c.map_weight == 0.5 or (c.map == "both" and t.seg_weight > 0),
             f"--map-weight weighs --map both's two maps; --map {c.map}"
             f"{' without a per-pixel head (--seg-weight 0)' if c.map == 'both' else ''} makes one"),
            (c.patch_bank >= 1, "--patch-bank must be at least 1"),
            (c.image_score in ("embedding", "auto") or t.seg_weight > 0 or c.map != "seg",
             f"--image-score {c.image_score} needs maps: the per-pixel head (--seg-weight > 0) or --map density"),
            (0 < c.threshold_quantile <= 1, "--threshold-quantile must lie in (0, 1]"),
            one_of(c.threshold_rule, THRESHOLD_RULES, "threshold rule"),
            (0 <= c.holdout <= 0.5, "holdout must lie in [0, 0.5]"),
            (c.holdout_min >= 0, "holdout_min cannot be negative"),
            (c.views_below >= 0, "views_below cannot be negative"),
            (0 <= c.auto_margin < 1, "auto_margin must lie in [0, 1)"),
            one_of(c.inference_precision, PRECISIONS, "inference precision"),
            (c.tile == 0 or MIN_IMAGE_SIZE <= c.tile <= d.image_size,
             f"--tile must be 0 (whole images) or lie in [{MIN_IMAGE_SIZE}, --image-size {d.image_size}]"),
            one_of(c.tile_pass, TILE_PASSES, "tile pass"),
            (0 <= c.tile_overlap <= MAX_TILE_OVERLAP, f"--tile-overlap must lie in [0, {MAX_TILE_OVERLAP}]"),
            (c.whole_view == 0 or MIN_IMAGE_SIZE <= c.whole_view <= d.image_size,
             f"--whole-view must be 0 (off) or lie in [{MIN_IMAGE_SIZE}, --image-size {d.image_size}]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise SsladError(msg)
        return self

    def resolved(self) -> RunConfig:
        """A validated copy with every ``None`` default filled in (what a run folder stores)."""
        cfg = self.validate()
        if cfg.train.lr is None:
            cfg = cfg.override(train={"lr": DEFAULT_LR[cfg.train.optimizer]})
        if cfg.score.map == "both" and cfg.train.seg_weight == 0:  # no per-pixel head: the density's maps alone
            cfg = cfg.override(score={"map": "density"})
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from a (possibly partial) nested dict; unknown keys are an error."""
        out = {}
        for name, value in (raw or {}).items():
            if name not in SECTIONS:
                raise SsladError(f"unknown config section {name!r} (expected {', '.join(SECTIONS)})")
            kind = SECTIONS[name]
            if name == "score" and isinstance(value, dict) and "scorer" in value:  # run folders before 0.2
                value = {("density" if k == "scorer" else k): v for k, v in value.items()}
            known = {f.name for f in fields(kind)}
            if value is not None and not isinstance(value, dict):
                raise SsladError(f"config section {name!r} must be a mapping of keys to values")
            bad = set(value or {}) - known
            if bad:
                raise SsladError(f"unknown key(s) in config section {name!r}: {', '.join(sorted(bad))}")
            types = {f.name: f.type for f in fields(kind)}
            out[name] = kind(**{k: _parse(f"{name}.{k}", types[k], v) for k, v in (value or {}).items()})
        return cls(**out)

    def override(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some fields of some sections replaced (``None`` values are ignored)."""
        cfg = self
        for name, values in sections.items():
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                cfg = replace(cfg, **{name: replace(getattr(cfg, name), **values)})
        return cfg


def _parse(key: str, annotation: str, value: Any) -> Any:
    """A config value checked (and, from text, parsed) as its flag would be: ``lr: 1e-3`` is a float.

    YAML reads ``1e-3`` as text and ``32.5`` as a float; both go through the field's own type:
    int fields take whole numbers (or text of one), float fields numbers (or text of one), text
    fields text. Anything else is one clear error naming the key.
    """
    if value is None and "None" in annotation:
        return None
    kinds = [k.strip() for k in annotation.split("|") if k.strip() != "None"]
    for kind in kinds:  # in the annotation's order: ``float | str`` takes a number, else a word (map_weight: auto)
        try:
            if kind == "bool" and isinstance(value, bool):
                return value
            if kind == "int" and not isinstance(value, (bool, float)):
                return int(value)
            if kind == "float" and not isinstance(value, bool):
                return float(value)
            if kind == "str" and isinstance(value, str):
                return value
        except (TypeError, ValueError):
            pass
    want = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false"}
    raise SsladError(f"config key {key}: expected {' or '.join(want[k] for k in kinds)}, got {value!r}")


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
    "ARCHS", "BACKENDS", "COLORS", "DEFAULT_LR", "DEVICES", "EMBEDDINGS", "IMAGE_SCORES", "MAX_IMAGE_SIZE",
    "MIN_IMAGE_SIZE",
    "OPTIMIZERS", "PRECISIONS", "SCARS", "DENSITIES", "DECODERS", "SEG_LOSSES", "TRUNK_NORMS", "EXPORT_FORMATS",
    "DEFAULT_DEVICE",
    "DISTILL_INITS", "DISTILL_LOSSES", "FINETUNE_FROM", "MAP_SOURCES", "MAP_WEIGHT_CHOICES", "PATCH_DENSITIES",
    "PREVIEW_COUNT", "SCORE_MAPS",
    "GPU_RENDER_PIXELS",
    "RENDER_BATCH",
    "STUDENT_ARCHS", "DistillConfig",
    "FinetuneConfig", "DataConfig", "RunConfig", "ScoreConfig", "SynthConfig", "TrainConfig", "default", "load_yaml",
    "save_yaml",
]
