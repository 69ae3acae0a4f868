"""``sslad predict``: score every image of a folder (or one image file) with a trained run, optionally with
map overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslad.config import DEFAULT_DEVICE
from sslad.data import list_inputs
from sslad.detector import SCORE_CHUNK, Detection, Detector
from sslad.errors import SsladError
from sslad.files import check_output_file, make_output_dir, writing
from sslad.labels import UNKNOWN
from sslad.report import overlay, write_scores


def save_overlays(folder: Path, det: Detection, value_range, threshold) -> None:
    """One PNG per image (``folder/<stem>.png``): the map over the image as the model saw it (S x S),
    on the model's colour scale; the images were decoded once, for scoring."""
    from PIL import Image

    make_output_dir(folder, "--maps folder")
    for path, img, m in zip(det.paths, det.images, det.maps, strict=True):
        rgb = img.permute(1, 2, 0).numpy()
        Image.fromarray(overlay(rgb, m.numpy(), value_range, threshold)).save(folder / f"{Path(path).stem}.png")


def predict_folder(run_dir: str, folder: str, out_csv: str | None = None, device: str = DEFAULT_DEVICE,
                   maps: bool = False, chunk: int = SCORE_CHUNK) -> dict:
    """Scores and decisions for every image of ``folder`` (or the one image file it names); CSV at ``out_csv``
    (default RUN_DIR/predictions.csv). Images are decoded, scored and drawn a chunk at a time
    (:meth:`Detector.score_chunks`): a folder of any size fits in memory.

    With ``maps``, an overlay PNG per image goes to ``maps/`` beside the CSV.
    """
    from sslad.checkpoint import run_folder

    run_dir = run_folder(run_dir)
    out = check_output_file(out_csv if out_csv else run_dir / "predictions.csv", "--out")
    detector = Detector.load(run_dir, device)
    if maps and not detector.has_maps:
        raise SsladError(f"{run_dir} was trained without the per-pixel head (--seg-weight 0): it makes no maps")
    paths, scores, skipped, flagged = [], [], [], 0
    for det in detector.score_chunks(list_inputs(folder), chunk, progress="score"):  # one chunk in memory at a time
        paths.extend(det.paths)
        skipped.extend(det.skipped)
        scores.append(det.scores)
        flagged += int(np.sum(det.anomalous))
        if maps and det.paths:
            with writing(out.parent / "maps", "--maps folder"):
                save_overlays(out.parent / "maps", det, detector.map_range, detector.pixel_threshold)
    scores = np.concatenate(scores)
    with writing(out, "--out"):
        write_scores(out, paths, [UNKNOWN] * len(paths), scores, detector.threshold, skipped)
    res = {"images": len(paths), "flagged": flagged, "threshold": detector.threshold, "out": str(out),
           "scores": scores, "skipped": skipped}
    if maps:
        res["maps"] = str(out.parent / "maps")
    return res


__all__ = ["predict_folder", "save_overlays"]
