"""``sslad``: thin click commands that parse flags, build configs and call library functions.

Defaults and choices shown in ``--help`` are read from :mod:`sslad.config`, never copied. Heavy
imports (torch, DALI) happen inside the commands, so ``sslad --help`` is instant. Multi-process
training: ``torchrun ... -m sslad.cli train ...``.
"""

from __future__ import annotations

import functools
import sys

import click

from sslad import __version__
from sslad import config as C
from sslad.errors import SsladError


def friendly(fn):
    """Turn SsladError (bad input, bad flags, missing dependency) into one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SsladError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _d(section: str, name: str) -> str:
    """`` [default]`` for a help text, from the config dataclasses."""
    return f" [{C.default(section, name)}]"


class _NumberOrAuto(click.ParamType):
    """A flag that takes a number or the word ``auto`` (``--map-weight``): a number when it reads as one, else the
    word, which the config's validation accepts or names in one line."""

    name = "number|auto"

    def convert(self, value, param, ctx):
        try:
            return float(value)
        except ValueError:
            return str(value).strip().lower()


def _options(*opts):
    def deco(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return deco


#: Flags shared by train and preview: data, the pretext task, and where/how it runs.
data_options = _options(
    click.option("--category", default=None, help="Category sub-folder of DATA (MVTec AD root)."),
    click.option("--image-size", type=int, default=None, help="Image side in pixels" + _d("data", "image_size")),
)
synth_options = _options(
    click.option("--backend", type=click.Choice(C.BACKENDS), default=None,
                 help="Pretext renderer" + _d("synth", "backend")),
    click.option("--variants", type=int, default=None,
                 help="Synthetic samples per class per image, per regeneration" + _d("synth", "variants")),
    click.option("--scar", type=click.Choice(C.SCARS), default=None,
                 help="Scar style: thin random-colour line, or CutPaste-Scar patch" + _d("synth", "scar")),
    click.option("--color", type=click.Choice(C.COLORS), default=None,
                 help="Colour space of the synthetic anomalies; auto: grey for grayscale data" + _d("synth", "color")),
    click.option("--irregular", type=float, default=None,
                 help="Share of cut-paste/scar samples drawn as irregular soft blobs" + _d("synth", "irregular")),
    click.option("--other-source", type=float, default=None,
                 help="Share of blob cut-pastes blending in another image" + _d("synth", "other_source")),
    click.option("--cracks", type=float, default=None,
                 help="Share of the non-blob scars drawn as thin meandering cracks" + _d("synth", "cracks")),
    click.option("--border", type=float, default=None,
                 help="Share of cut-paste/scar anomalies moved to touch a side of the image" + _d("synth", "border")),
    click.option("--blob-area", type=float, default=None,
                 help="Largest share of the image an irregular blob's box covers" + _d("synth", "blob_area")),
    click.option("--blob-sizes", type=click.Choice(C.BLOB_SIZES), default=None,
                 help="How blob box areas spread from 2 % up to --blob-area: uniform, or log-uniform (as many "
                      "blobs per doubling of area: most stay small, a tail is large)" + _d("synth", "blob_sizes")),
)
run_options = _options(
    click.option("--device", default=None, help=f"{' | '.join(C.DEVICES)}" + _d("train", "device")),
    click.option("--seed", type=int, default=None,
                 help="Base seed; regeneration k uses seed + k" + _d("train", "seed")),
    click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                 help="YAML file with sections data/synth/train/score; flags override it."),
)


#: The scorer's flags, shared by train and rescore (what fit_scorer reads; the held-out split stays the run's).
score_options = _options(
    click.option("--density", type=click.Choice(C.DENSITIES), default=None,
                 help="Density fitted on the embeddings" + _d("score", "density")),
    click.option("--knn-k", type=int, default=None, help="Neighbours for --density knn" + _d("score", "knn_k")),
    click.option("--embedding", type=click.Choice(C.EMBEDDINGS), default=None,
                 help="What the image density is fitted on: the trunk's pooled layer4 (pooled), or that and the global "
                 "maximum of the layer2-3 patch descriptors (pooled+peak)" + _d("score", "embedding")),
    click.option("--image-score", type=click.Choice(C.IMAGE_SCORES), default=None,
                 help="Image score: auto (best on synthetic anomalies of held-out images), embedding density, map "
                 "maximum, or both standardised" + _d("score", "image_score")),
    click.option("--map", type=click.Choice(C.SCORE_MAPS), default=None,
                 help="Anomaly maps from the per-pixel head (seg), a patch density over the trunk's patch descriptors "
                 "(density, --map-layers), or both averaged on their held-out scales" + _d("score", "map")),
    click.option("--map-weight", type=_NumberOrAuto(), default=None,
                 help="--map both: the per-pixel head's share of the joined map, the patch density's the rest "
                 "(0 to 1); lower, the defects' outlines over large regions' fill (AUPRO for pixel AUROC, "
                 "docs/results.md); auto: the share whose maps outline probe anomalies (blur, noise, shift) on "
                 "held-out images best"
                 + _d("score", "map_weight")),
    click.option("--patch-density", type=click.Choice(C.PATCH_DENSITIES), default=None,
                 help="The density maps' model: one Gaussian over the good patch descriptors (gauss), or a coreset "
                 "memory of them and the nearest one's distance (knn, PatchCore's)" + _d("score", "patch_density")),
    click.option("--patch-bank", type=int, default=None,
                 help="--patch-density knn: descriptors kept in the memory" + _d("score", "patch_bank")),
    click.option("--map-layers", type=click.Choice(C.MAP_LAYERS), default=None,
                 help="The trunk stages whose maps make the density maps' patch descriptors: layer2-3 at 1/8 of the "
                 "side, layer3-4 at 1/16 (a wider context: large low-contrast regions filled) or all three; auto: the "
                 "one whose maps outline synthetic anomalies on the held-out images best" + _d("score", "map_layers")),
    click.option("--tile", type=int, default=None,
                 help="Score in overlapping tiles of this side (e.g. the --crop side); 0: whole images"
                 + _d("score", "tile")),
    click.option("--tile-overlap", type=float, default=None,
                 help="--tile: the least share of a tile its neighbours overlap by (0 to 0.75); lower, fewer network "
                 "passes per image (at 640 px of 128-px tiles: 81 at 0.5, 25 at 0)" + _d("score", "tile_overlap")),
    click.option("--tile-pass", type=click.Choice(C.TILE_PASSES), default=None,
                 help="--tile: a network pass per tile (each), or one pass over the whole image with each tile's "
                 "embedding pooled over its window and the whole image's maps (once: (S/P)^2 tiles' work), or each "
                 "tile's embedding from its own pass and the maps from one whole pass (maps-once)"
                 + _d("score", "tile_pass")),
    click.option("--whole-view", type=int, default=None,
                 help="Also score the whole image at this side (e.g. half the --image-size) with a density of its own, "
                 "joined with the main view's on the held-out images' statistics; 0: off" + _d("score", "whole_view")),
    click.option("--inference-precision", type=click.Choice(C.PRECISIONS), default=None,
                 help="What scoring computes in, stored with the run for eval/predict: fp32 (the exported model's "
                 "exact scores) or bf16 (about 2x faster on CPUs with native bf16; auto: there)"
                 + _d("score", "inference_precision")),
    click.option("--threshold-quantile", type=float, default=None,
                 help="Thresholds: this quantile of the held-out good images' scores"
                 + _d("score", "threshold_quantile")),
    click.option("--threshold-rule", type=click.Choice(C.THRESHOLD_RULES), default=None,
                 help="How the thresholds read that quantile: predictive (the bound a new good image passes with "
                 "probability 1 - quantile when the top fifth of the held-out scores is an exponential tail, at any "
                 "number of held-out images), tail (that tail's quantile at its fitted scale, 0.8's rule: passes more "
                 "than promised on few images) or quantile (their empirical quantile, joined by their augmented "
                 "views' scores below score.views_below held-out images; the rule before 0.8)"
                 + _d("score", "threshold_rule")),
)


def build_config(data: str, kw: dict) -> C.RunConfig:
    """The config file (if any), then every flag given, validated."""
    cfg = C.load_yaml(kw["config_file"]) if kw.get("config_file") else C.RunConfig()
    sections = {name: {f: kw.get(f) for f in C.SECTIONS[name].__dataclass_fields__} for name in C.SECTIONS}
    sections["data"]["path"] = data
    return cfg.override(**sections).validate()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sslad")
def cli():
    """Self-supervised anomaly detection: CutPaste pretext task, DALI/torch regeneration, Gaussian scoring."""


@cli.command()
@click.argument("data")
@data_options
@synth_options
@run_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--epochs", type=int, default=None,
              help="Training epochs; 0 scores with the untrained network (the baseline)" + _d("train", "epochs"))
@click.option("--batch-size", type=int, default=None, help="Images per step, all classes" + _d("train", "batch_size"))
@click.option("--regen-every", type=int, default=None,
              help="Regenerate the synthetic set every N epochs" + _d("synth", "regen_every"))
@click.option("--optimizer", type=click.Choice(C.OPTIMIZERS), default=None,
              help="adam, or sgd with momentum (the CutPaste paper's)" + _d("train", "optimizer"))
@click.option("--lr", type=float, default=None, help="Learning rate, one cosine cycle ["
              + ", ".join(f"{v:g} {k}" for k, v in C.DEFAULT_LR.items()) + "].")
@click.option("--warmup", type=float, default=None,
              help="Share of the steps with a linear learning-rate warm-up before the cosine" + _d("train", "warmup"))
@click.option("--trunk-lr", type=float, default=None,
              help="The trunk's learning rate as a factor on --lr, in (0, 10] (heads and decoder keep --lr)"
              + _d("train", "trunk_lr"))
@click.option("--trunk-norm", type=click.Choice(C.TRUNK_NORMS), default=None,
              help="The trunk's BatchNorm in training: batch statistics, or frozen at the first weights' ones"
              + _d("train", "trunk_norm"))
@click.option("--arch", type=click.Choice(C.ARCHS), default=None, help="Trunk" + _d("train", "arch"))
@click.option("--weights", default=None,
              help="none | imagenet | PATH to a torchvision state dict" + _d("train", "weights"))
@click.option("--seg-weight", type=float, default=None,
              help="Weight of the per-pixel loss on the synthetic masks; 0: no maps" + _d("train", "seg_weight"))
@click.option("--decoder", type=click.Choice(C.DECODERS), default=None,
              help="Per-pixel head: U-Net decoder (1/2 resolution) or the light layer1-3 head" + _d("train", "decoder"))
@click.option("--seg-width", type=int, default=None,
              help="The per-pixel head's width (the U-Net's widths scale from it: 2w at 1/16 .. w/2 at 1/2)"
              + _d("train", "seg_width"))
@click.option("--seg-loss", type=click.Choice(C.SEG_LOSSES), default=None,
              help="Per-pixel loss (focal, class-balanced BCE, Dice + BCE, plain BCE)" + _d("train", "seg_loss"))
@click.option("--min-steps", type=int, default=None,
              help="Train at least this many optimiser steps (more epochs for small sets)" + _d("train", "min_steps"))
@click.option("--crop", type=int, default=None,
              help="Train on crops of this side of the --image-size images; 0: whole images" + _d("train", "crop"))
@click.option("--precision", type=click.Choice(C.PRECISIONS), default=None,
              help="auto: bf16 autocast on CUDA and on CPUs with native bf16" + _d("train", "precision"))
@score_options
@click.option("--baseline/--no-baseline", default=None,
              help="Also fit and score the untrained network (the training's first weights, the same seed) the same "
              "way, and report it beside the run: what the pretext training is worth on this data (the --epochs 0 "
              "run, in the same command; about one more scoring pass)" + _d("score", "baseline"))
@click.option("--student", type=click.Choice(C.STUDENT_ARCHS), default=None,
              help="Then distil the run into a student of this trunk, in RUN_DIR/student (see sslad distill).")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (removes the files sslad wrote there).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its training state.")
@friendly
def train(data, out_dir, student, overwrite, resume, **kw):
    """Train on DATA's good images, fit the scorer, evaluate the test split, write the run folder."""
    from sslad.api import train as train_api

    cfg = build_config(data, kw)
    train_api(cfg, out_dir, student=student, overwrite=overwrite, resume=resume, log=_log)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--arch", type=click.Choice(C.STUDENT_ARCHS), default=C.DistillConfig.arch, show_default=True,
              help="Student trunk: the teacher's own, a one-block-per-stage ResNet (resnet10_slim: its last "
              "stage at 256 channels), or MobileNetV3-Small.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Student run folder.")
@click.option("--epochs", type=int, default=C.DistillConfig.epochs, show_default=True, help="Distillation epochs.")
@click.option("--min-steps", type=int, default=C.DistillConfig.min_steps, show_default=True,
              help="At least this many optimiser steps.")
@click.option("--lr", type=float, default=C.DistillConfig.lr, show_default=True,
              help="Adam learning rate, one cosine cycle.")
@click.option("--map", "map_source", type=click.Choice(C.MAP_SOURCES), default=C.DistillConfig.map, show_default=True,
              help="The run's map: the student's own head (seg, the small detector), the student-teacher "
              "discrepancy (distill: keeps both networks), or the better on synthetic held-out anomalies (auto).")
@click.option("--embed-weight", type=float, default=C.DistillConfig.embed_weight, show_default=True,
              help="Weight of the pooled-embedding error, measured in the teacher density's metric.")
@click.option("--loss", type=click.Choice(C.DISTILL_LOSSES), default=C.DistillConfig.loss, show_default=True,
              help="Squared error of the teacher's maps standardised per channel (mse) or per-location cosine "
              "distance.")
@click.option("--init", type=click.Choice(C.DISTILL_INITS), default=C.DistillConfig.init, show_default=True,
              help="Start a ResNet student from the teacher's stem and first blocks per stage (teacher) or at random.")
@click.option("--image-size", type=int, default=None, help="Must be the teacher's (checked) [the teacher's].")
@click.option("--seed", type=int, default=C.DistillConfig.seed, show_default=True,
              help="Seed of the augmented sets and the student's initialisation.")
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (removes the files sslad wrote there).")
@friendly
def distill(run_dir, arch, out_dir, epochs, min_steps, lr, map_source, embed_weight, loss, init, image_size, seed,
            device, overwrite):
    """Distil RUN_DIR's pretext network into a new, equal or smaller network on its real good images."""
    from sslad.api import train_student

    dc = C.DistillConfig(arch=arch, epochs=epochs, min_steps=min_steps, lr=lr, seed=seed, device=device,
                         map=map_source, embed_weight=embed_weight, loss=loss, init=init)
    train_student(run_dir, out_dir, dc, image_size=image_size, overwrite=overwrite, log=_log)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Fine-tuned run folder.")
@click.option("--epochs", type=int, default=C.FinetuneConfig.epochs, show_default=True, help="Fine-tuning epochs.")
@click.option("--min-steps", type=int, default=C.FinetuneConfig.min_steps, show_default=True,
              help="At least this many optimiser steps.")
@click.option("--lr", type=float, default=C.FinetuneConfig.lr, show_default=True,
              help="Adam learning rate, one cosine cycle.")
@click.option("--batch-size", type=int, default=C.FinetuneConfig.batch_size, show_default=True,
              help="Images per step (two augmented views of each).")
@click.option("--temperature", type=float, default=C.FinetuneConfig.temperature, show_default=True,
              help="Temperature of the contrastive loss.")
@click.option("--angular", type=float, default=C.FinetuneConfig.angular, show_default=True,
              help="Weight of the angular centre loss (views pulled towards the normal mean).")
@click.option("--train-from", type=click.Choice(C.FINETUNE_FROM), default=C.FinetuneConfig.train_from,
              show_default=True, help="The first trunk stage that learns; the earlier ones stay frozen.")
@click.option("--seed", type=int, default=C.FinetuneConfig.seed, show_default=True, help="Seed of the views.")
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (removes the files sslad wrote there).")
@friendly
def finetune(run_dir, out_dir, overwrite, **kw):
    """Fine-tune RUN_DIR's pretext network (the equal model) on its real good images: mean-shifted contrastive
    loss on the pooled embedding, then a new density, maps and thresholds."""
    from sslad.finetune import finetune_run

    finetune_run(run_dir, out_dir, C.FinetuneConfig(**kw), overwrite=overwrite, log=_log)
    _log(f"fine-tuned run folder: {out_dir}")


@cli.command(name="eval")
@click.argument("run_dir", type=click.Path())
@click.argument("data")
@click.option("--category", default=None, help="Category sub-folder of DATA.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where to write metrics.json and scores.csv [RUN_DIR/eval].")
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@friendly
def eval_cmd(run_dir, data, category, out_dir, device):
    """Re-score DATA's test split with the model and scorer saved in RUN_DIR."""
    from sslad.evaluate import evaluate_run
    from sslad.report import results_table

    metrics = evaluate_run(run_dir, data, category, out_dir, device)
    _warn_skipped([(s["path"], s["error"]) for s in metrics["skipped_images"]])
    click.echo(results_table(metrics))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New run folder.")
@score_options
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (removes the files sslad wrote there).")
@friendly
def rescore(run_dir, out_dir, device, overwrite, **score):
    """Fit RUN_DIR's scorer again with the scoring flags given (the rest the run's; the network, its held-out split
    and seed unchanged) into a new run folder, evaluated on the run's test split: what the run would report had it
    been trained with them, in minutes instead of a training. A flag left out keeps the run's setting (the
    brackets show sslad train's defaults)."""
    from sslad.api import rescore as rescore_api

    rescore_api(run_dir, out_dir, device=device, overwrite=overwrite, log=_log, **score)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--threshold-quantile", "quantile", type=float, default=None,
              help="The thresholds' quantile of the held-out good images' scores [the run's].")
@click.option("--threshold-rule", "rule", type=click.Choice(C.THRESHOLD_RULES), default=None,
              help="How the thresholds read that quantile (see sslad train --help) [the run's].")
@click.option("--data", default=None, help="Where the training data is now, when it moved [the run's].")
@click.option("--category", default=None, help="Category sub-folder of --data.")
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@friendly
def calibrate(run_dir, quantile, rule, data, category, device):
    """Set RUN_DIR's image and map thresholds again, at another quantile or rule, from its held-out good images:
    no training; scores and maps unchanged; model.pt keeps the previous values. Then sslad eval re-scores a test
    split at them, and predict flags by them."""
    from sslad.thresholds import calibrate_run

    calibrate_run(run_dir, quantile=quantile, rule=rule, data=data, category=category, device=device, log=_log)


@cli.command()
@click.argument("data")
@data_options
@synth_options
@run_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--count", type=int, default=C.PREVIEW_COUNT, show_default=True, help="Samples to render.")
@friendly
def preview(data, out_dir, count, **kw):
    """Render the first COUNT pretext samples a training run would see; write PNGs and plan.json."""
    if count < 1:
        raise SsladError("--count must be at least 1")
    cfg = build_config(data, kw)
    from sslad.preview import preview as run_preview

    res = run_preview(cfg, out_dir, count)
    click.echo(f"{res['count']} samples ({res['backend']}) written to {res['out']}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.argument("folder", metavar="FOLDER|IMAGE", type=click.Path())
@click.option("--out", "out_csv", default=None, type=click.Path(dir_okay=False),
              help="CSV to write [RUN_DIR/predictions.csv].")
@click.option("--device", default=C.DEFAULT_DEVICE, show_default=True, help=" | ".join(C.DEVICES))
@click.option("--maps", is_flag=True, help="Also write an anomaly-map overlay PNG per image to maps/ beside the CSV.")
@friendly
def predict(run_dir, folder, out_csv, device, maps):
    """Score every image in FOLDER (or one IMAGE file) with RUN_DIR's model; flag those above the run's threshold."""
    from sslad.predict import predict_folder

    res = predict_folder(run_dir, folder, out_csv, device, maps=maps)
    _warn_skipped(res["skipped"])
    click.echo(f"{res['images']} images scored, {res['flagged']} above threshold {res['threshold']:.4g}, "
               f"{len(res['skipped'])} skipped; written to {res['out']}" + (f", maps in {res['maps']}" if maps else ""))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(C.EXPORT_FORMATS), default=C.EXPORT_FORMATS[0], show_default=True,
              help="Model format.")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False),
              help="File to write [RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt].")
@friendly
def export(run_dir, fmt, out_file):
    """Export RUN_DIR's model with its preprocessing and scorer: uint8 images in, (scores, maps) out."""
    from sslad.export import export_run

    res = export_run(run_dir, fmt, out_file)
    click.echo(f"wrote {res['out']} (uint8 RGB (N, 3, {res['image_size']}, {res['image_size']}) -> scores, maps) "
               f"and {res['sidecar']}")


def _warn_skipped(skipped: list[tuple[str, str]]) -> None:
    for _, reason in skipped:
        _log(f"warning: skipped, {reason}")


def _csv_list(value: str, kind=str) -> list:
    try:
        return [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from exc


@cli.command()
@click.option("--backends", default="dali,torch,pil", show_default=True, help="Comma list of dali, torch, pil.")
@click.option("--device", "devices", default="cpu", show_default=True, help="Comma list of cpu, cuda.")
@click.option("--image-size", "sizes", default="256", show_default=True, help="Comma list of image sides.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Renderer / DataLoader batch.")
@click.option("--images", type=int, default=128, show_default=True,
              help="Base images; one regeneration yields 3 per image.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed regenerations.")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed regenerations first.")
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers of the pil pipeline.")
@click.option("--training", is_flag=True, help="Also time full training steps fed by each backend.")
@click.option("--train-steps", type=int, default=10, show_default=True, help="Timed steps with --training.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write img/s vs size PNG.")
@friendly
def bench(backends, devices, sizes, batch_size, images, repeats, warmup, workers, training, train_steps,
          json_path, plot_path):
    """Regeneration throughput (img/s, MB/s, CPU s per image, GPU memory) per backend, device and size."""
    from sslad.bench import format_table, plot_report, run_bench
    from sslad.files import check_output_file, writing
    from sslad.report import write_json

    for path, flag in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:
            check_output_file(path, flag)
    report = run_bench(_csv_list(backends), _csv_list(devices), _csv_list(sizes, int), batch_size, images, repeats,
                       warmup, workers, training=training, train_steps=train_steps, log=_log)
    click.echo(format_table(report))
    if json_path:
        with writing(json_path, "--json"):
            write_json(json_path, report)
    if plot_path:
        with writing(plot_path, "--plot"):
            plot_report(report, plot_path)


def main() -> None:  # pragma: no cover - console entry point
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
