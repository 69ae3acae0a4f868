"""Metrics: image AUROC overall and per defect type, pixel AUROC, AUPRO, and decisions at a threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sslad.labels import GOOD


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present.

    Computed as the Mann-Whitney statistic: for every positive, the negatives scored below it, ties counted half —
    the trapezoidal area under the ROC curve exactly (``sklearn.metrics.roc_auc_score``'s value), from one sort
    of each class in the scores' own dtype instead of an argsort of all of them in float64: a split's pixels
    (tens of millions) in seconds rather than a minute."""
    labels = np.asarray(labels).ravel() > 0
    scores = np.asarray(scores).ravel()
    if labels.size != scores.size:
        raise ValueError(f"{labels.size} labels for {scores.size} scores")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    neg = np.sort(scores[~labels])
    pos = np.sort(scores[labels])  # sorted: the searches below walk the negatives once
    below = np.searchsorted(neg, pos, side="left").astype(np.float64)
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / n_pos / n_neg)


def _per_type(types: Sequence[str], fn) -> dict:
    """``fn(selection)`` for good + each defect type (boolean selections over ``types``)."""
    types = np.asarray(list(types))
    good = types == GOOD
    return {t: fn(good | (types == t)) for t in sorted(set(types.tolist()) - {GOOD})}


def image_metrics(types: Sequence[str], scores: np.ndarray) -> dict:
    """``{"image_auroc": float, "per_type_auroc": {type: float}, "counts": {type: int}}``."""
    types = list(types)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.array([t != GOOD for t in types], dtype=np.int64)
    counts = {t: types.count(t) for t in sorted(set(types))}
    return {"image_auroc": auroc(labels, scores),
            "per_type_auroc": _per_type(types, lambda sel: auroc(labels[sel], scores[sel])), "counts": counts}


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit`` false-positive rate, normalised to [0, 1].

    PRO at a threshold is the mean, over connected defect regions (8-connectivity) of every image,
    of the share of the region's pixels above the threshold; the FPR is the share of defect-free
    pixels above it (Bergmann et al., MVTec AD). Thresholds are ``steps`` quantiles of the
    defect-free pixels' scores spanning FPR 0..``fpr_limit``; the curve is integrated with the
    trapezoidal rule, its end interpolated at exactly ``fpr_limit``. NaN without any defect region.
    """
    fpr, pro, _ = _region_pro(maps, masks, fpr_limit, steps)
    return math.nan if pro is None else _pro_area(fpr, pro.mean(0), fpr_limit)


def _region_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float, steps: int):
    """(FPR (T,) ascending, each region's overlap at those thresholds (R, T) or None without a region, the image
    of each region (R,)): :func:`aupro`'s curve before the regions are averaged."""
    from scipy import ndimage

    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks) > 0
    regions, image = [], []
    for i, (m, a) in enumerate(zip(masks, maps, strict=True)):
        if m.any():
            lab, n = ndimage.label(m, structure=np.ones((3, 3)))
            regions += [np.sort(a[lab == r]) for r in range(1, n + 1)]
            image += [i] * n
    if not regions:
        return None, None, np.zeros(0, np.int64)
    normal = np.sort(maps[~masks])
    thresholds = np.unique(np.quantile(normal, 1.0 - np.linspace(0.0, fpr_limit, steps + 1)))
    thresholds = np.concatenate([[np.inf], thresholds[::-1]])
    fpr = 1.0 - np.searchsorted(normal, thresholds, side="right") / normal.size
    pro = np.stack([1.0 - np.searchsorted(r, thresholds, side="right") / r.size for r in regions])
    order = np.argsort(fpr, kind="stable")
    return fpr[order], pro[:, order], np.asarray(image, np.int64)


def _pro_area(fpr: np.ndarray, pro: np.ndarray, fpr_limit: float) -> float:
    """The normalised trapezoidal area under one (T,) overlap curve over ascending ``fpr``, up to ``fpr_limit``."""
    keep = fpr <= fpr_limit
    end = np.interp(fpr_limit, fpr, pro)
    x = np.concatenate([fpr[keep], [fpr_limit]])
    y = np.concatenate([pro[keep], [end]])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / fpr_limit)


def aupro_by_type(types: Sequence[str], maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3,
                  steps: int = 300) -> dict:
    """``{"aupro": float, "per_type_aupro": {type: float}, "per_type_regions": {type: int}}``: :func:`aupro`, and
    the same area for each defect type's regions alone on the whole split's false-positive axis (every image's
    defect-free pixels), so the split's AUPRO is the types' mean weighted by their regions: where it is lost."""
    fpr, pro, image = _region_pro(maps, masks, fpr_limit, steps)
    if pro is None:
        return {"aupro": math.nan, "per_type_aupro": {}, "per_type_regions": {}}
    kinds = np.asarray(list(types))[image]
    per_type = {t: _pro_area(fpr, pro[kinds == t].mean(0), fpr_limit) for t in sorted(set(kinds.tolist()))}
    return {"aupro": _pro_area(fpr, pro.mean(0), fpr_limit), "per_type_aupro": per_type,
            "per_type_regions": {t: int((kinds == t).sum()) for t in per_type}}


def pixel_metrics(types: Sequence[str], maps: np.ndarray, masks: np.ndarray) -> dict:
    """``pixel_auroc`` over every pixel of the split, per type (good images + that type), and ``aupro``, per type
    too (:func:`aupro_by_type`: each type's regions on the split's false-positive axis, with their counts)."""
    maps = np.asarray(maps, dtype=np.float32)
    masks = (np.asarray(masks) > 0).astype(np.uint8)
    return {
        "pixel_auroc": auroc(masks.ravel(), maps.ravel()),
        "per_type_pixel_auroc": _per_type(types, lambda sel: auroc(masks[sel].ravel(), maps[sel].ravel())),
        **aupro_by_type(types, maps, masks),
    }


def decision_metrics(types: Sequence[str], scores: np.ndarray, threshold: float | None) -> dict:
    """What the stored threshold does on a labelled split, and the F1-optimal threshold (uses the labels)."""
    from sklearn.metrics import precision_recall_curve

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.array([t != GOOD for t in types])
    out: dict = {"false_positive_rate": None, "recall": None}
    if threshold is not None:
        flagged = scores > threshold
        out["false_positive_rate"] = float(flagged[~labels].mean()) if (~labels).any() else None
        out["recall"] = float(flagged[labels].mean()) if labels.any() else None
    if labels.any() and (~labels).any():
        p, r, t = precision_recall_curve(labels, scores)
        f1 = 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12)
        best = int(np.argmax(f1))
        out.update({"f1_max": float(f1[best]), "f1_max_threshold": float(t[best]),
                    "f1_max_uses_test_labels": True})
    return out


def quantile_threshold(scores: np.ndarray, quantile: float) -> float:
    """Decision threshold: the ``quantile`` of scores of good images the scorer was *not* fitted on."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), quantile))


TAIL_FROM = 0.8  # tail_threshold: the scores above this quantile of them make the fitted tail


def tail_threshold(scores: np.ndarray, quantile: float, tail_from: float = TAIL_FROM) -> float:
    """Decision threshold from an exponential tail fitted to the good images' scores above their ``tail_from``
    quantile u (peaks over a threshold with shape 0; the scale's maximum-likelihood estimate is the mean
    excess): u + mean excess * ln((1 - tail_from) / (1 - quantile)). The empirical 0.99 quantile of 77 scores
    rests on their top two; this averages the fifteen above u (``docs/results.md``, *Threshold rules*). For a
    ``quantile`` inside the body (<= ``tail_from``) or at 1, the empirical quantile."""
    s = np.asarray(scores, dtype=np.float64)
    if not tail_from < quantile < 1:
        return quantile_threshold(s, quantile)
    u = float(np.quantile(s, tail_from))
    excess = s[s > u] - u
    return u + (float(excess.mean()) if excess.size else 0.0) * float(np.log((1 - tail_from) / (1 - quantile)))


def predictive_threshold(scores: np.ndarray, quantile: float, tail_from: float = TAIL_FROM) -> float:
    """Decision threshold that a *new* good score exceeds with probability 1 - ``quantile`` (in expectation over
    the held-out draw), at any number n of held-out scores when the scores' tail is exponential.

    The k = floor((1 - ``tail_from``) n) largest scores (at least one) are the tail; u is the next one. A new good
    score exceeds u with probability (k + 1) / (n + 1), whatever the scores' law (its rank among n + 1 is
    uniform). Above u, the k excesses and the new one's are exponential of one unknown scale, so the new one
    exceeds c times the excesses' sum S with probability (1 + c)^-k (the Gamma law's Laplace transform); c is
    solved for (k + 1) / (n + 1) (1 + c)^-k = 1 - quantile. :func:`tail_threshold` puts the fitted scale in
    place of the unknown one (u + S/k ln(...)): right on many scores, too low on few (its false-positive rate
    is 2.7 % at n = 20 and 4.7 % at n = 10 for a promised 1 %); this one is 1.0 % at every n on exponential
    scores and under it on lighter tails (``docs/results.md``, *Predictive thresholds*). A ``quantile`` whose
    tail share is not above 1 - ``quantile`` (inside the body), or 1: the empirical quantile."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = s.size
    k = max(1, int(np.floor((1 - tail_from) * n + 1e-9)))
    target = (1 - quantile) * (n + 1) / (k + 1)  # P(new > threshold | new > u)
    if not 0 < target < 1 or k >= n:
        return quantile_threshold(s, quantile)
    u = s[n - k - 1]
    return float(u + (s[n - k:] - u).sum() * (target ** (-1.0 / k) - 1.0))
