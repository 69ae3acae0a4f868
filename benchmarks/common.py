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


def option(argv: list[str], key: str, default: str) -> str:
    """The value after option ``key`` (``--size 128``), or ``default``."""
    return argv[argv.index(key) + 1] if key in argv else default


def trailing(argv: list[str], key: str, default: list[str]) -> list[str]:
    """The values after option ``key`` (the last option of a command line: ``--layers 2,3 3,4``), or ``default``."""
    return argv[argv.index(key) + 1:] if key in argv else list(default)
