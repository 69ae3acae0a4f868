"""Image-level metrics: AUROC overall and per defect type (good vs that type)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sslad.labels import GOOD


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def image_metrics(types: Sequence[str], scores: np.ndarray) -> dict:
    """``{"image_auroc": float, "per_type_auroc": {type: float}, "counts": {type: int}}``."""
    types = list(types)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.array([t != GOOD for t in types], dtype=np.int64)
    per_type = {}
    good = labels == 0
    for t in sorted(set(types) - {GOOD}):
        sel = good | (np.array(types) == t)
        per_type[t] = auroc(labels[sel], scores[sel])
    counts = {t: types.count(t) for t in sorted(set(types))}
    return {"image_auroc": auroc(labels, scores), "per_type_auroc": per_type, "counts": counts}


def threshold_from_good(scores: np.ndarray, quantile: float = 0.99) -> float:
    """Decision threshold: a high quantile of the scores of good *training* images."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), quantile))
