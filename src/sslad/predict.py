"""``sslad predict``: score every image of a folder with a trained run."""

from __future__ import annotations

from pathlib import Path

from sslad.checkpoint import load_checkpoint
from sslad.data import load_folder
from sslad.errors import SsladError
from sslad.evaluate import score_set
from sslad.report import write_scores
from sslad.runtime import resolve_device


def predict_folder(run_dir: str, folder: str, out_csv: str | None, device: str = "auto") -> dict:
    dev = resolve_device(device)
    model, scorer, ckpt = load_checkpoint(Path(run_dir), dev)
    if scorer is None:
        raise SsladError(f"{run_dir} holds no fitted scorer (interrupted run?)")
    images = load_folder(folder, int(ckpt["preprocessing"]["image_size"]))
    scores = score_set(model, scorer, images, progress="score")
    threshold = ckpt.get("threshold")
    out = Path(out_csv) if out_csv else Path(folder) / "sslad_scores.csv"
    write_scores(out, images.paths, images.types, scores, threshold)
    flagged = int((scores > threshold).sum()) if threshold is not None else 0
    return {"images": len(images), "flagged": flagged, "threshold": threshold, "out": str(out),
            "scores": scores}
