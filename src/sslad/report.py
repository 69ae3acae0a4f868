"""Run-folder artefacts: CSV/JSON writers, the results table and plots (matplotlib when installed)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from sslad.labels import GOOD, UNKNOWN


def json_safe(obj):
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(json_safe(obj), indent=2) + "\n")


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
    """A short human-readable table of the headline numbers: what ``report.png``'s table holds (image AUROC; pixel AUROC
    and AUPRO where the data has masks; each with its per-type values below it; false-positive rate and recall at
    the stored threshold) and the training's time. Shares are printed in per cent."""
    pct = []  # (label, share) rows, printed as per cent; each AUROC's per-type values below it
    for key, label in (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO"),
                       ("false_positive_rate", "FPR at threshold (%)"), ("recall", "recall at threshold (%)")):
        if key == "image_auroc" or metrics.get(key) is not None:
            pct += [(label, metrics.get(key))] + [(f"  {t}", v) for t, v in per_type(metrics, key).items()]
    what = "distillation" if "student" in metrics else "fine-tuning" if "finetune" in metrics else "train"
    timing = (("train_time_s", f"{what} time (s)"), ("images_per_s", "train images/s"),
              ("regen_time_s", "regeneration time (s)"))
    plain = [(label, metrics[key]) for key, label in timing if key in metrics]
    width = max(len(r[0]) for r in pct + plain)
    lines = []
    for rows, scale in ((pct, 100.0), (plain, 1.0)):
        for name, v in rows:
            s = "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{scale * v:.1f}"
            lines.append(f"{name.ljust(width)}  {s}")
    return "\n".join(lines)


def save_report(path: Path, metrics: dict, types, scores, threshold: float | None, images=None, maps=None,
                map_range=None, pixel_threshold: float | None = None, per_row: int = 4, masks=None,
                untrained: dict | None = None) -> bool:
    """One picture of a result (``report.png``): the table (image AUROC, pixel AUROC and AUPRO, each per type), the
    ROC curve, score histograms (good vs defective, log-scaled counts) with the threshold, and overlays, on the
    model's stored colour scale, of the highest-scoring good images (false alarms first) and the lowest-scoring
    defective ones (misses first), the region above ``pixel_threshold`` outlined white and, given ``masks``
    (N, H, W), the ground truth magenta; ``untrained`` (the ``--baseline`` metrics) adds the untrained network's
    AUROCs to the table. False when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve
    except ImportError:
        return False
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.array([t != GOOD for t in types])
    show = images is not None and maps is not None and map_range is not None
    rows = 3 if show else 1
    fig = plt.figure(figsize=(4 * per_row, 3.6 * rows))
    grid = fig.add_gridspec(rows, per_row)
    ax = fig.add_subplot(grid[0, 0])
    ax.axis("off")
    cells = [["image AUROC", _pct(metrics.get("image_auroc"))], ["pixel AUROC", _pct(metrics.get("pixel_auroc"))],
             ["AUPRO", _pct(metrics.get("aupro"))], ["FPR at threshold", _pct(metrics.get("false_positive_rate"))],
             ["recall at threshold", _pct(metrics.get("recall"))]]
    if untrained:
        cells += [[f"untrained: {name}", _pct(untrained.get(key))] for key, name in
                  (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO"))
                  if untrained.get(key) is not None]
    types_by = {label: per_type(metrics, key) for key, label in
                (("image_auroc", "image"), ("pixel_auroc", "pixel"), ("aupro", "AUPRO"))}
    types_by = {label: values for label, values in types_by.items() if values}
    if types_by:  # then a column per measure with per-type values (the pixel ones where the data has masks)
        cells = [row + [""] * (len(types_by) - 1) for row in cells] + [["per type", *types_by]]
        cells += [[f"  {t}", *(_pct(v.get(t)) for v in types_by.values())] for t in next(iter(types_by.values()))]
    table = ax.table(cellText=cells, loc="center", cellLoc="left")
    table.auto_set_column_width(list(range(len(cells[0]))))
    table.scale(1, 1.3)
    ax = fig.add_subplot(grid[0, 1])
    if labels.any() and (~labels).any():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax = fig.add_subplot(grid[0, 2:])
    positive = bool((scores > 0).all())
    edges = (np.geomspace(scores.min(), scores.max(), 40) if positive and scores.max() > scores.min()
             else np.linspace(scores.min(), scores.max() + 1e-9, 40))
    ax.hist(scores[~labels], bins=edges, alpha=0.6, label="good")
    ax.hist(scores[labels], bins=edges, alpha=0.6, label="defective")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label="threshold")
    if positive:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="anomaly score", ylabel="images", title="scores")
    ax.legend()
    if show:
        order = np.argsort(scores)
        picks = [("good, highest", [i for i in order[::-1] if not labels[i]][:per_row]),
                 ("defective, lowest", [i for i in order if labels[i]][:per_row])]
        for r, (title, idx) in enumerate(picks, start=1):
            for c, i in enumerate(idx):
                ax = fig.add_subplot(grid[r, c])
                rgb = images[i].permute(1, 2, 0).numpy()
                truth = None if masks is None else masks[i].numpy()
                ax.imshow(overlay(rgb, maps[i].numpy(), map_range, pixel_threshold, truth))
                ax.set_title(f"{title}: {types[i]} {scores[i]:.3g}", fontsize=8)
                ax.axis("off")
    fig.tight_layout()
    if show:
        key = "white: map above the pixel threshold" + ("; magenta: ground truth" if masks is not None else "")
        fig.text(0.5, 0.005, key, ha="center", fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


PER_TYPE_KEYS = {"image_auroc": "per_type_auroc", "pixel_auroc": "per_type_pixel_auroc", "aupro": "per_type_aupro"}


def per_type(metrics: dict, key: str) -> dict:
    """``metrics``' per-defect-type values of ``key`` (image_auroc, pixel_auroc or aupro), sorted by type; {} when
    there are none (or ``key`` has none: the false-positive rate, the recall)."""
    return dict(sorted((metrics.get(PER_TYPE_KEYS[key]) or {}).items())) if key in PER_TYPE_KEYS else {}


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


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


#: The colour of the ground truth's outline in overlays (magenta: apart from the heat ramp and the white threshold).
TRUTH_COLOR = (255.0, 0.0, 255.0)


def overlay(image: np.ndarray, amap: np.ndarray, value_range: tuple[float, float],
            threshold: float | None = None, truth: np.ndarray | None = None) -> np.ndarray:
    """Anomaly map over an image, on a fixed scale: uint8 (H, W, 3) image, float (H, W) map.

    The map is normalised by ``value_range`` (the model's stored display range, the same for every
    image) and blended in proportion to its value, so a good image stays close to itself; pixels
    on the border of the region above ``threshold`` are drawn white, those on the border of the
    ground-truth mask ``truth`` (H, W; nonzero inside) magenta.
    """
    lo, hi = value_range
    t = np.clip((amap - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    alpha = 0.65 * t[..., None]
    out = image.astype(np.float32) * (1 - alpha) + 255.0 * heat_colors(t) * alpha
    if threshold is not None:
        out[_border(amap > threshold)] = 255.0
    if truth is not None:
        out[_border(np.asarray(truth) > 0)] = TRUTH_COLOR
    return np.round(out).astype(np.uint8)


def _border(region: np.ndarray) -> np.ndarray:
    """The pixels of a boolean region with a 4-neighbour outside it (the image edge counts as inside)."""
    inner = region.copy()
    inner[1:-1, 1:-1] &= region[:-2, 1:-1] & region[2:, 1:-1] & region[1:-1, :-2] & region[1:-1, 2:]
    return region & ~inner
