"""What every benchmark script shares: where and how a recorded result is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save_record(name: str, record: dict) -> Path:
    """``benchmarks/results/NAME.json`` (with the machine info of ``sslad bench``), announced on stdout."""
    from sslad.bench import metadata

    record = {**record, "metadata": record.get("metadata") or metadata()}
    dest = RESULTS / f"{name}.json"
    dest.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {dest}")
    return dest


def load_run(run_dir: str, image_size: int | None = None):
    """A finished run with its data: (model, scorer, checkpoint, config, dataset, fit images, held-out images),
    the split exactly as training made it; with ``image_size``, the images decoded at that side instead of the
    run's (the config returned says so)."""
    import dataclasses

    from sslad.checkpoint import load_checkpoint
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train

    model, scorer, ckpt = load_checkpoint(run_dir)
    cfg = RunConfig.from_dict(ckpt["config"])
    if image_size:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=image_size))
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    return model, scorer, ckpt, cfg, data, fit, holdout


def name_and_run(argv: list[str], usage: str, options: bool = False):
    """(NAME, RUN_DIR) of a benchmark called ``script.py NAME RUN_DIR`` (followed by options where ``options``),
    or None after printing its ``usage``."""
    if len(argv) < 2 or (len(argv) > 2 and not options):
        print(usage, file=sys.stderr)
        return None
    return argv[0], argv[1]


def map_benchmark(argv: list[str], usage: str):
    """A maps benchmark called ``script.py NAME RUN_DIR [options] [--maps SOURCE ...]``: (NAME, RUN_DIR, the run as
    :func:`load_run` gives it, the map sources), or None after printing its ``usage``."""
    if (args := name_and_run(argv, usage, options=True)) is None:
        return None
    return *args, load_run(args[1]), trailing(argv, "--maps", ["seg", "density", "both"])


def synth_benchmark(argv: list[str], usage: str):
    """A rendering benchmark called ``script.py NAME [--size S] [--crop C] [--config YAML] [options]`` (no network):
    (NAME, S, C, the config's path, its synth section), or None after printing its ``usage``."""
    from sslad.config import load_yaml

    if not argv or argv[0].startswith("-"):
        print(usage, file=sys.stderr)
        return None
    config = option(argv, "--config", "configs/cpu.yaml")
    size, crop = int(option(argv, "--size", "128")), int(option(argv, "--crop", "0"))
    return argv[0], size, crop, config, load_yaml(config).synth


def option(argv: list[str], key: str, default: str) -> str:
    """The value after option ``key`` (``--size 128``), or ``default``."""
    return argv[argv.index(key) + 1] if key in argv else default


def trailing(argv: list[str], key: str, default: list[str]) -> list[str]:
    """The values after option ``key`` up to the next option (``--layers 2,3 3,4``), or ``default``."""
    if key not in argv:
        return list(default)
    values = argv[argv.index(key) + 1:]
    ends = [i for i, v in enumerate(values) if v.startswith("--")]
    return values[:ends[0]] if ends else values


def maps_of(model, scorer, images, size: int):
    """float (N, S, S) numpy maps of ``images`` (uint8 (N, 3, S, S)) as ``scorer`` makes them (its tiles, its
    precision)."""
    from sslad.models import infer_images

    out = infer_images(model, images, tile=scorer.tile, map_fn=scorer.map_fn, precision=scorer.precision)
    return scorer.maps(out.maps, size).numpy()


def fitted_maps(model, fit, holdout, cfg, source: str, images):
    """The run's scorer fitted anew exactly as ``sslad train`` fits it with ``score.map = source``, and its maps of
    ``images``."""
    from sslad.training import fit_scorer

    scorer = fit_scorer(model, fit, holdout, cfg.override(score={"map": source}))
    return scorer, maps_of(model, scorer, images, cfg.data.image_size)


def test_masks(data, size: int):
    """The test split's types (numpy str array) and its masks as (N, S, S) bool."""
    import numpy as np

    types = np.array(data.test.types)
    return types, data.test.masks.numpy().reshape(len(types), size, size) > 0


def yardsticks(holdout, cfg, key: str, values) -> dict:
    """The run's synthetic held-out set (what ``sslad train`` renders for its choices) rendered with each value of
    ``synth.<key>``, whatever the run trained with: {value: Synthetic}."""
    from sslad.backends import make_renderer
    from sslad.training import render_synthetic_holdout

    renderer = make_renderer("torch", cfg.data.image_size, "cpu")
    return {v: render_synthetic_holdout(holdout, renderer, cfg.override(synth={key: v})) for v in values}


def yardstick_auroc(model, scorer, synth, size: int) -> float:
    """The label-free yardstick: the pixel AUROC of ``scorer``'s maps on a rendered synthetic set against its masks."""
    from sslad.scoring.metrics import auroc

    return auroc(synth.masks.numpy().ravel() > 0, maps_of(model, scorer, synth.images, size).ravel())


def flat_regenerations(synth, size: int, regenerations: int = 6, images: int = 60):
    """Regenerations 0..n-1 of ``images`` flat grey ``size``-px images with the ``synth`` section (torch renderer,
    seed 0), for label-free counts of what the masks cover: yields (plan, Synthetic) pairs."""
    import torch

    from sslad.backends import make_renderer
    from sslad.synth.generator import PretextGenerator

    flat = torch.full((images, 3, size, size), 128, dtype=torch.uint8)
    gen = PretextGenerator(flat, make_renderer("torch", size, torch.device("cpu")), synth, seed=0)
    for k in range(regenerations):
        yield gen.plan(k), gen.regenerate(k)


def training_windows(masks, crop: int, seed: int):
    """uint8 (N, P, P): the ``crop``-pixel windows of (N, S, S) ``masks`` a ``--crop P`` run trains on
    (``crop_offsets``: each window holds its sample's whole mask where it fits, drawn uniformly among those that
    do)."""
    import torch

    from sslad.synth.crops import crop_offsets, take_crops

    return take_crops(masks[:, None], masks, crop_offsets(masks, crop, torch.Generator().manual_seed(seed)), crop)[1]


def pixel_row(types, maps, masks) -> dict:
    """Pixel AUROC, AUPRO and per-type pixel AUROC and AUPRO (rounded) of float (N, S, S) ``maps`` against the test
    ``masks``."""
    from sslad.scoring.metrics import pixel_metrics

    m = pixel_metrics(list(types), maps.numpy(), masks)
    return {"pixel_auroc": round(m["pixel_auroc"], 5), "aupro": round(m["aupro"], 5),
            **{k: {t: round(v, 5) for t, v in sorted(m[k].items())}
               for k in ("per_type_pixel_auroc", "per_type_aupro")}}


def per_run_benchmark(argv: list[str], usage: str, script: str, analyse) -> int:
    """A benchmark called ``script NAME RUN_DIR [RUN_DIR ...]``: ``analyse(RUN_DIR)`` of each run, recorded as NAME;
    the exit status."""
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    name, runs = argv[0], argv[1:]
    save_record(name, {"name": name, "command": f"python benchmarks/{script} " + " ".join(argv),
                       "runs": [analyse(r) for r in runs]})
    return 0
