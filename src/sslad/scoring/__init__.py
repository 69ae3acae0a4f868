"""Downstream scoring, separate from training: densities and decisions on network outputs (never images), metrics."""

from sslad.scoring.density import (
    GaussianDensity,
    KNNDensity,
    ledoit_wolf,
    make_scorer,
    scorer_from_state,
)
from sslad.scoring.detector import AnomalyScorer
from sslad.scoring.maps import to_image_maps
from sslad.scoring.metrics import (
    aupro,
    auroc,
    decision_metrics,
    image_metrics,
    pixel_metrics,
    quantile_threshold,
)

__all__ = [
    "AnomalyScorer", "GaussianDensity", "KNNDensity", "aupro", "auroc", "decision_metrics", "image_metrics",
    "ledoit_wolf", "make_scorer", "pixel_metrics", "quantile_threshold", "scorer_from_state", "to_image_maps",
]
