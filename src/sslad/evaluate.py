"""Scoring a split with a trained model and fitted scorer, and writing the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslad.data import ImageSet
from sslad.errors import SsladError
from sslad.report import plot_scores, write_json, write_scores
from sslad.scoring import image_metrics
from sslad.scoring.embed import embed_images


def score_set(model, scorer, images: ImageSet, progress: str | None = None) -> np.ndarray:
    emb = embed_images(model, images.images, progress=progress)
    return scorer.score(emb).cpu().numpy()


def evaluate_set(model, scorer, test: ImageSet, out_dir: Path, threshold: float | None,
                 extra: dict | None = None) -> dict:
    """Score ``test``; write ``scores.csv``, ``metrics.json`` and ``scores.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = score_set(model, scorer, test, progress="score test")
    metrics = image_metrics(test.types, scores)
    metrics["threshold"] = threshold
    metrics.update(extra or {})
    write_scores(out_dir / "scores.csv", test.paths, test.types, scores, threshold)
    write_json(out_dir / "metrics.json", metrics)
    plot_scores(out_dir / "scores.png", test.types, scores, threshold)
    return metrics


def evaluate_run(run_dir: str, data_path: str, category: str | None, out_dir: str | None,
                 device: str = "auto") -> dict:
    """``sslad eval``: re-score the test split of ``data_path`` with the run's model and scorer."""
    from sslad.checkpoint import load_checkpoint
    from sslad.data import load_dataset
    from sslad.runtime import resolve_device

    dev = resolve_device(device)
    model, scorer, ckpt = load_checkpoint(Path(run_dir), dev)
    if scorer is None:
        raise SsladError(f"{run_dir} holds no fitted scorer (interrupted run?); train it to the end first")
    size = int(ckpt["preprocessing"]["image_size"])
    data = load_dataset(data_path, category, size, device="cpu", splits=("test",))
    if data.test is None or len(data.test) == 0:
        raise SsladError(f"{data_path} has no test split to evaluate")
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    return evaluate_set(model, scorer, data.test, out, ckpt.get("threshold"),
                        extra={"dataset": data.name, "run_dir": str(run_dir)})
