"""``sslad``: thin click commands that parse flags, build configs and call library functions.

Heavy imports (torch, DALI) happen inside the commands, so ``sslad --help`` is instant.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from sslad import __version__
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


DATA_HELP = "MVTec-layout folder (category folder, or root with --category), or elpv[:mono|:poly]."


def data_options(fn):
    opts = [
        click.option("--category", default=None, help="Category sub-folder of DATA (MVTec AD root)."),
        click.option("--image-size", type=int, default=None, help="Image side in pixels [256]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def synth_options(fn):
    opts = [
        click.option("--backend", type=click.Choice(["torch", "dali"]), default=None,
                     help="Pretext renderer [torch]."),
        click.option("--device", default=None, help="auto | cpu | cuda [auto]."),
        click.option("--variants", type=int, default=None,
                     help="Synthetic samples per class per image, per regeneration [1]."),
        click.option("--scar", type=click.Choice(["line", "patch"]), default=None,
                     help="Scar style: thin random-colour line, or CutPaste-Scar patch [line]."),
        click.option("--seed", type=int, default=None, help="Base seed; regeneration k uses seed + k [0]."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML file with sections data/synth/train/score; flags override it."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def build_config(data, kw: dict):
    from sslad.config import RunConfig, load_yaml

    cfg = load_yaml(kw["config_file"]) if kw.get("config_file") else RunConfig()
    return cfg.override(
        data={"path": data, "category": kw.get("category"), "image_size": kw.get("image_size")},
        synth={"backend": kw.get("backend"), "variants": kw.get("variants"), "scar": kw.get("scar"),
               "regen_every": kw.get("regen_every")},
        train={"device": kw.get("device"), "seed": kw.get("seed"), "epochs": kw.get("epochs"),
               "batch_size": kw.get("batch_size"), "lr": kw.get("lr"), "optimizer": kw.get("optimizer"),
               "arch": kw.get("arch"),
               "weights": kw.get("weights")},
        score={"scorer": kw.get("scorer"), "knn_k": kw.get("knn_k")},
    ).validate()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sslad")
def cli():
    """Self-supervised anomaly detection: CutPaste pretext task, DALI/torch regeneration, Gaussian scoring."""


@cli.command()
@click.argument("data")
@data_options
@synth_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--epochs", type=int, default=None, help="Training epochs [30].")
@click.option("--batch-size", type=int, default=None, help="Images per step, all classes [96].")
@click.option("--regen-every", type=int, default=None, help="Regenerate the synthetic set every N epochs [1].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None,
              help="adam, or sgd with momentum 0.9 (the CutPaste paper's) [adam].")
@click.option("--lr", type=float, default=None, help="Learning rate, one cosine cycle [3e-4 adam, 0.03 sgd].")
@click.option("--arch", type=click.Choice(["resnet18", "resnet50"]), default=None, help="Trunk [resnet18].")
@click.option("--weights", default=None, help="none | imagenet | PATH to a torchvision state dict [none].")
@click.option("--scorer", type=click.Choice(["gde", "knn"]), default=None, help="Density model [gde].")
@click.option("--knn-k", type=int, default=None, help="Neighbours for --scorer knn [5].")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --out.")
@friendly
def train(data, out_dir, overwrite, **kw):
    """Train on DATA's good images, fit the scorer, evaluate the test split, write the run folder."""
    cfg = build_config(data, kw)
    from sslad.train import train_run

    train_run(cfg, out_dir, overwrite=overwrite, log=_log)
    _log(f"run folder: {out_dir}")


@cli.command(name="eval")
@click.argument("run_dir", type=click.Path())
@click.argument("data")
@click.option("--category", default=None, help="Category sub-folder of DATA.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where to write metrics.json and scores.csv [RUN_DIR/eval].")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@friendly
def eval_cmd(run_dir, data, category, out_dir, device):
    """Re-score DATA's test split with the model and scorer saved in RUN_DIR."""
    from sslad.evaluate import evaluate_run
    from sslad.report import results_table

    metrics = evaluate_run(run_dir, data, category, out_dir, device)
    click.echo(results_table(metrics))


@cli.command()
@click.argument("data")
@data_options
@synth_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--count", type=int, default=24, show_default=True, help="Samples to render.")
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
@click.argument("folder", type=click.Path())
@click.option("--out", "out_csv", default=None, type=click.Path(dir_okay=False),
              help="CSV to write [RUN_DIR/predictions.csv].")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@friendly
def predict(run_dir, folder, out_csv, device):
    """Score every image in FOLDER with RUN_DIR's model; flag those above the run's threshold."""
    from sslad.predict import predict_folder

    res = predict_folder(run_dir, folder, out_csv or str(Path(run_dir) / "predictions.csv"), device)
    click.echo(f"{res['images']} images scored, {res['flagged']} above threshold "
               f"{res['threshold']:.4g}; written to {res['out']}")


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
    b_list, d_list, s_list = _csv_list(backends), _csv_list(devices), _csv_list(sizes, int)
    if not b_list or not d_list or not s_list:
        raise SsladError("--backends, --device and --image-size each need at least one value")
    if min(s_list) < 32:
        raise SsladError("--image-size must be at least 32")
    for name, v in (("--batch-size", batch_size), ("--images", images), ("--repeats", repeats),
                    ("--train-steps", train_steps)):
        if v < 1:
            raise SsladError(f"{name} must be at least 1")
    if warmup < 0 or workers < 0:
        raise SsladError("--warmup and --workers cannot be negative")
    from sslad.bench import HEADER, format_table, plot_report, run_bench
    from sslad.report import write_json

    _log(HEADER)
    report = run_bench(b_list, d_list, s_list, batch_size, images, repeats, warmup, workers,
                       training=training, train_steps=train_steps, log=_log)
    click.echo(format_table(report))
    if json_path:
        write_json(Path(json_path), report)
    if plot_path:
        plot_report(report, plot_path)


def main() -> None:  # pragma: no cover - console entry point
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
