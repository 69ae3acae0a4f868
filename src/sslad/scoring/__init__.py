"""Downstream scoring, separate from training: densities and decisions on network outputs (plain tensors,
never images or the network), and metrics."""

from sslad.scoring.density import (
    DENSITY_TYPES,
    GaussianDensity,
    KNNDensity,
    PatchGaussian,
    PatchKNN,
    density_from_state,
    ledoit_wolf,
    make_density,
)
from sslad.scoring.maps import to_image_maps
from sslad.scoring.metrics import (
    aupro,
    auroc,
    decision_metrics,
    image_metrics,
    pixel_metrics,
    predictive_threshold,
    quantile_threshold,
    tail_threshold,
)
from sslad.scoring.scorer import Scorer

__all__ = [
    "DENSITY_TYPES", "GaussianDensity", "KNNDensity", "PatchGaussian", "PatchKNN", "Scorer", "aupro", "auroc",
    "decision_metrics",
    "density_from_state", "image_metrics", "ledoit_wolf", "make_density", "pixel_metrics", "predictive_threshold",
    "quantile_threshold", "tail_threshold",
    "to_image_maps",
]
