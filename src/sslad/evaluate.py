"""Scoring images with a trained model and fitted scorer; the only writer of ``metrics.json`` and ``scores.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslad.data import ImageSet
from sslad.errors import SsladError
from sslad.models import embed_images
from sslad.report import plot_scores, write_json, write_scores
from sslad.scoring import image_metrics


def score_images(model, scorer, images: ImageSet, progress: str | None = None) -> np.ndarray:
    """Image scores: the scorer on the network's embeddings."""
    emb = embed_images(model, images.images, progress=progress)
    return scorer.score(emb).cpu().numpy()


def evaluate_set(model, scorer, test: ImageSet | None, out_dir: Path, threshold: float | None,
                 extra: dict | None = None) -> dict:
    """Score ``test`` and write ``metrics.json`` (+ ``scores.csv`` and ``scores.png``) into ``out_dir``.

    Without a test split, ``metrics.json`` still holds the threshold and ``extra`` (AUROC null).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"image_auroc": None, "per_type_auroc": {}, "counts": {}}
    if test is not None and len(test) > 0:
        scores = score_images(model, scorer, test, progress="score test")
        metrics = image_metrics(test.types, scores)
        write_scores(out_dir / "scores.csv", test.paths, test.types, scores, threshold)
        plot_scores(out_dir / "scores.png", test.types, scores, threshold)
    metrics["threshold"] = threshold
    metrics.update(extra or {})
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def evaluate_run(run_dir: str, data_path: str, category: str | None, out_dir: str | None,
                 device: str = "auto") -> dict:
    """``sslad eval``: re-score the test split of ``data_path`` with the run's model and scorer."""
    from sslad.checkpoint import load_for_scoring
    from sslad.data import load_dataset

    model, scorer, ckpt = load_for_scoring(run_dir, device)
    size = int(ckpt["preprocessing"]["image_size"])
    data = load_dataset(data_path, category, size, device="cpu", splits=("test",))
    if data.test is None or len(data.test) == 0:
        raise SsladError(f"{data_path} has no test split to evaluate")
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    return evaluate_set(model, scorer, data.test, out, ckpt.get("threshold"),
                        extra={"dataset": data.name, "run_dir": str(run_dir)})
