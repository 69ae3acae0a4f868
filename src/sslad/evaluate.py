"""Scoring images with a trained model and fitted scorer; the only writer of ``metrics.json`` and ``scores.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslad.data import ImageSet
from sslad.errors import SsladError
from sslad.files import make_output_dir
from sslad.models import infer_images
from sslad.report import plot_scores, write_json, write_scores
from sslad.scoring import AnomalyScorer, decision_metrics, image_metrics, pixel_metrics


def score_images(model, scorer: AnomalyScorer, images: ImageSet,
                 progress: str | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
    """(image scores (N,), smoothed anomaly maps float32 (N, S, S) or None)."""
    return scorer.score(infer_images(model, images.images, progress=progress))


def evaluate_set(model, scorer: AnomalyScorer, test: ImageSet | None, out_dir: Path, extra: dict | None = None) -> dict:
    """Score ``test`` and write ``metrics.json`` (+ ``scores.csv`` and ``scores.png``) into ``out_dir``.

    ``metrics.json``: image AUROC (overall, per type), pixel AUROC (overall, per type) and AUPRO
    when the split has masks and the model maps, the stored thresholds, what the image threshold
    does on the split (false-positive rate on good images, recall on defective ones), and the
    F1-optimal threshold, which uses the test labels (a diagnostic, not a calibration).
    Without a test split it still holds the thresholds and ``extra`` (AUROC null).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"image_auroc": None, "per_type_auroc": {}, "counts": {}}
    if test is not None and len(test) > 0:
        scores, maps = score_images(model, scorer, test, progress="score test")
        metrics = image_metrics(test.types, scores)
        if maps is not None and test.masks is not None:
            metrics.update(pixel_metrics(test.types, maps.numpy(), test.masks.numpy()))
        metrics.update(decision_metrics(test.types, scores, scorer.threshold))
        write_scores(out_dir / "scores.csv", test.paths, test.types, scores, scorer.threshold)
        plot_scores(out_dir / "scores.png", test.types, scores, scorer.threshold)
    metrics.update({"threshold": scorer.threshold, "threshold_quantile": scorer.quantile,
                    "pixel_threshold": scorer.pixel_threshold, "map_range": scorer.map_range})
    metrics.update(extra or {})
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def evaluate_run(run_dir: str, data_path: str, category: str | None, out_dir: str | None,
                 device: str = "auto") -> dict:
    """``sslad eval``: re-score the test split of ``data_path`` with the run's model and scorer."""
    from sslad.checkpoint import load_for_scoring, run_folder
    from sslad.data import load_dataset

    run_dir = run_folder(run_dir)
    out = make_output_dir(out_dir if out_dir is not None else run_dir / "eval", "--out")
    model, scorer, ckpt = load_for_scoring(run_dir, device)
    size = int(ckpt["preprocessing"]["image_size"])
    data = load_dataset(data_path, category, size, device="cpu", splits=("test",))
    if data.test is None or len(data.test) == 0:
        raise SsladError(f"{data_path} has no readable test images to evaluate")
    skipped = [{"path": p, "error": reason} for p, reason in data.skipped]
    return evaluate_set(model, scorer, data.test, out, extra={"dataset": data.name, "run_dir": str(run_dir),
                                                              "skipped_images": skipped})
