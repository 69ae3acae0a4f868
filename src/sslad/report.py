"""Run-folder artefacts: CSV/JSON writers, the results table and plots (matplotlib when installed)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from sslad.labels import GOOD, UNKNOWN


def _clean(obj):
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(_clean(obj), indent=2) + "\n")


def write_scores(path: Path, paths, types, scores, threshold: float | None,
                 skipped: list[tuple[str, str]] = ()) -> None:
    """One row per image: path, label (1 defective, 0 good, empty if unknown), type, score, decision;
    unreadable images (``skipped``: path, reason) get a row with no score and the reason in ``error``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "defect_type", "score", "predicted_anomalous", "error"])
        for p, t, s in zip(paths, types, scores, strict=True):
            label = "" if t == UNKNOWN else int(t != GOOD)
            pred = "" if threshold is None else int(float(s) > threshold)
            w.writerow([p, label, t, f"{float(s):.6f}", pred, ""])
        for p, reason in skipped:
            w.writerow([p, "", "", "", "", reason])


class EpochLog:
    """Appends one row per epoch to metrics.csv as it goes (nothing is lost on interruption)."""

    FIELDS = ["epoch", "regen_index", "loss", "accuracy", "lr", "epoch_s", "regen_s", "images_per_s"]

    def __init__(self, path: Path, append: bool = False):
        self.path = Path(path)
        if not (append and self.path.is_file()):
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)

    def add(self, **row) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k)) for k in self.FIELDS])


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def results_table(metrics: dict) -> str:
    """A short human-readable table of the headline numbers."""
    rows = [("image AUROC", metrics.get("image_auroc"))]
    for t, v in sorted((metrics.get("per_type_auroc") or {}).items()):
        rows.append((f"  {t}", v))
    for key, label in (("train_time_s", "train time (s)"), ("images_per_s", "train images/s"),
                       ("regen_time_s", "regeneration time (s)")):
        if key in metrics:
            rows.append((label, metrics[key]))
    width = max(len(r[0]) for r in rows)
    lines = []
    for name, v in rows:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            s = "n/a"
        elif "AUROC" in name or name.startswith("  "):
            s = f"{100 * v:.1f}"
        else:
            s = f"{v:.1f}"
        lines.append(f"{name.ljust(width)}  {s}")
    return "\n".join(lines)


def plot_scores(path: Path, types, scores, threshold: float | None = None) -> bool:
    """Histogram of scores, good vs anomalous, and the ROC curve. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve
    except ImportError:
        return False
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.array([t != GOOD for t in types])
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(scores.min(), scores.max(), 40)
    ax[0].hist(scores[~labels], bins=bins, alpha=0.6, label="good")
    ax[0].hist(scores[labels], bins=bins, alpha=0.6, label="anomalous")
    if threshold is not None:
        ax[0].axvline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax[0].set_xlabel("anomaly score")
    ax[0].legend()
    if labels.any() and (~labels).any():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax[1].plot(fpr, tpr)
        ax[1].plot([0, 1], [0, 1], "k:", lw=1)
    ax[1].set_xlabel("false positive rate")
    ax[1].set_ylabel("true positive rate")
    ax[1].set_title("ROC")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def save_grid(path: Path, images, ncol: int = 8) -> None:
    """uint8 (N, 3, H, W) tensor to one PNG grid."""
    from PIL import Image

    x = images.cpu().numpy()
    n, _, h, w = x.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    canvas = np.zeros((nrow * (h + 2), ncol * (w + 2), 3), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = x[i].transpose(1, 2, 0)
    Image.fromarray(canvas).save(path)


def save_class_grid(path: Path, images, labels, class_names, per_class: int = 8) -> None:
    """One row per class of up to ``per_class`` images each (the first of that class), as one PNG."""
    import torch

    rows = [images[(labels == c).nonzero().flatten()[:per_class]].cpu() for c in range(len(class_names))]
    n = min(len(r) for r in rows)
    if n:
        save_grid(path, torch.cat([r[:n] for r in rows]), ncol=n)


def heat_colors(t: np.ndarray) -> np.ndarray:
    """A blue-green-yellow-red colour ramp ('jet') for values in [0, 1]: float (..., 3) in [0, 1]."""
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.clip(1.5 - np.abs(4.0 * t - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)


def overlay(image: np.ndarray, amap: np.ndarray, value_range: tuple[float, float],
            threshold: float | None = None) -> np.ndarray:
    """Anomaly map over an image, on a fixed scale: uint8 (H, W, 3) image, float (H, W) map.

    The map is normalised by ``value_range`` (the model's stored display range, the same for every
    image) and blended in proportion to its value, so a good image stays close to itself; pixels
    on the border of the region above ``threshold`` are drawn white.
    """
    lo, hi = value_range
    t = np.clip((amap - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    alpha = 0.65 * t[..., None]
    out = image.astype(np.float32) * (1 - alpha) + 255.0 * heat_colors(t) * alpha
    if threshold is not None:
        above = amap > threshold
        inner = above.copy()
        inner[1:-1, 1:-1] &= above[:-2, 1:-1] & above[2:, 1:-1] & above[1:-1, :-2] & above[1:-1, 2:]
        out[above & ~inner] = 255.0
    return np.round(out).astype(np.uint8)
