"""``sslad predict``: score every image of a folder with a trained run, optionally with map overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sslad.checkpoint import load_for_scoring, run_folder
from sslad.data import load_folder
from sslad.errors import SsladError
from sslad.evaluate import score_images
from sslad.files import check_output_file
from sslad.report import overlay, write_scores


def save_overlays(folder: Path, paths: list[str], maps: torch.Tensor, value_range, threshold) -> None:
    """One PNG per image (``folder/<stem>.png``) at the image's own resolution, on the model's colour scale."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for path, m in zip(paths, maps, strict=True):
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        h, w = rgb.shape[:2]
        full = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        Image.fromarray(overlay(rgb, full, value_range, threshold)).save(folder / f"{Path(path).stem}.png")


def predict_folder(run_dir: str, folder: str, out_csv: str | None = None, device: str = "auto",
                   maps: bool = False) -> dict:
    """Scores and decisions for every image of ``folder``; CSV at ``out_csv`` (default RUN_DIR/predictions.csv).

    With ``maps``, an overlay PNG per image goes to ``maps/`` beside the CSV.
    """
    run_dir = run_folder(run_dir)
    out = check_output_file(out_csv if out_csv else run_dir / "predictions.csv", "--out")
    model, scorer, ckpt = load_for_scoring(run_dir, device)
    if maps and not model.cfg.seg_head:
        raise SsladError(f"{run_dir} was trained without the per-pixel head (--seg-weight 0): it makes no maps")
    images, skipped = load_folder(folder, int(ckpt["preprocessing"]["image_size"]))
    scores, amaps = score_images(model, scorer, images, progress="score")
    threshold = scorer.threshold
    write_scores(out, images.paths, images.types, scores, threshold, skipped)
    res = {"images": len(images), "flagged": int((scores > threshold).sum()) if threshold is not None else 0,
           "threshold": threshold, "out": str(out), "scores": scores, "skipped": skipped}
    if maps:
        res["maps"] = str(out.parent / "maps")
        save_overlays(out.parent / "maps", images.paths, amaps, scorer.map_range, scorer.pixel_threshold)
    return res
