"""What every benchmark script shares: where and how a recorded result is written."""

from __future__ import annotations

import json
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


def load_run(run_dir: str):
    """A finished run with its data: (model, scorer, checkpoint, config, dataset, fit images, held-out images),
    the split exactly as training made it."""
    from sslad.checkpoint import load_checkpoint
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train

    model, scorer, ckpt = load_checkpoint(run_dir)
    cfg = RunConfig.from_dict(ckpt["config"])
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    return model, scorer, ckpt, cfg, data, fit, holdout
