"""Downstream scoring, separate from training: density models on embeddings (never images) and metrics."""

from sslad.scoring.density import (
    GaussianDensity,
    KNNDensity,
    ledoit_wolf,
    make_scorer,
    scorer_from_state,
)
from sslad.scoring.metrics import auroc, image_metrics, threshold_from_good

__all__ = [
    "GaussianDensity", "KNNDensity", "auroc", "image_metrics", "ledoit_wolf", "make_scorer",
    "scorer_from_state", "threshold_from_good",
]
