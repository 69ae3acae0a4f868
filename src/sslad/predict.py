"""``sslad predict``: score every image of a folder with a trained run."""

from __future__ import annotations

from pathlib import Path

from sslad.checkpoint import load_for_scoring
from sslad.data import load_folder
from sslad.evaluate import score_images
from sslad.report import write_scores


def predict_folder(run_dir: str, folder: str, out_csv: str | None = None, device: str = "auto") -> dict:
    """Scores and decisions for every image of ``folder``; CSV at ``out_csv`` (default RUN_DIR/predictions.csv)."""
    model, scorer, ckpt = load_for_scoring(run_dir, device)
    images = load_folder(folder, int(ckpt["preprocessing"]["image_size"]))
    scores = score_images(model, scorer, images, progress="score")
    threshold = ckpt.get("threshold")
    out = Path(out_csv) if out_csv else Path(run_dir) / "predictions.csv"
    write_scores(out, images.paths, images.types, scores, threshold)
    flagged = int((scores > threshold).sum()) if threshold is not None else 0
    return {"images": len(images), "flagged": flagged, "threshold": threshold, "out": str(out),
            "scores": scores}
