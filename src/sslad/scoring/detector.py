"""From network outputs to decisions: image scores, anomaly maps and thresholds that hold on new images.

:class:`AnomalyScorer` sees network outputs only (embeddings and low-resolution per-pixel
probabilities), never images. It fits the density on the embeddings of the *fit* part of the good
training images and calibrates on the *held-out* part, which neither the density nor the network
has seen (``sslad.data.holdout_split``):

* image score (``image_score``): ``embedding`` (the density's score), ``map`` (the maximum of the
  smoothed anomaly map) or ``both`` (the sum of the two, each standardised by its mean and
  standard deviation on the held-out images);
* image threshold: the ``quantile`` of the held-out image scores;
* pixel threshold: the ``quantile`` of the held-out images' map maxima (a good image has no pixel
  above it with that probability), and the map display range ``[median held-out pixel, 2x the
  threshold's distance above it]``, so overlays of every image share one colour scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from sslad.config import ScoreConfig
from sslad.scoring.density import make_scorer, scorer_from_state
from sslad.scoring.maps import to_image_maps
from sslad.scoring.metrics import quantile_threshold

if TYPE_CHECKING:  # the network's output type only: scoring never runs the network
    from sslad.models import Outputs

FORMAT = "sslad-scorer"


class AnomalyScorer:
    def __init__(self, cfg: ScoreConfig | None = None):
        cfg = cfg or ScoreConfig()
        self.density = make_scorer(cfg)
        self.image_score = cfg.image_score
        self.quantile = cfg.threshold_quantile
        self.image_size = 0
        self.stats: dict[str, list[float]] = {}
        self.threshold: float | None = None
        self.pixel_threshold: float | None = None
        self.map_range: list[float] | None = None
        self.calibration = {"set": None, "images": 0}

    @property
    def uses_maps(self) -> bool:
        return self.image_score in ("map", "both")

    def maps(self, out: Outputs) -> torch.Tensor | None:
        """float32 (N, S, S) smoothed anomaly maps, or None when the network has no per-pixel head."""
        return None if out.maps is None else to_image_maps(out.maps, self.image_size)

    def _parts(self, embeddings: torch.Tensor, maps: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """float64 (N,) score of each part: the density on the embeddings, the maximum of each map."""
        parts = {"embedding": self.density.score(embeddings).double()}
        if maps is not None:
            parts["map"] = maps.flatten(1).amax(1).double()
        return parts

    def _combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.image_score == "both":
            return sum((parts[k] - self.stats[k][0]) / self.stats[k][1] for k in ("embedding", "map"))
        return parts[self.image_score]

    def score_tensors(self, embeddings: torch.Tensor, probs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain tensor ops for one batch (what the exported model runs): (float64 image scores (N,),
        smoothed maps (N, S, S), or an empty (N, 0, 0) tensor without a per-pixel head)."""
        from sslad.scoring.maps import smooth_maps

        maps = None if probs is None else smooth_maps(probs, self.image_size)
        scores = self._combine(self._parts(embeddings, maps))
        return scores, maps if maps is not None else embeddings.new_zeros((embeddings.shape[0], 0, 0))

    def fit(self, fit: Outputs, holdout: Outputs | None, image_size: int) -> AnomalyScorer:
        """Density on ``fit``'s embeddings; standardisation and thresholds on ``holdout`` (``fit`` if None)."""
        if self.uses_maps and fit.maps is None:
            raise ValueError(f"image score {self.image_score!r} needs a network with a per-pixel head")
        self.image_size = int(image_size)
        self.density.fit(fit.embeddings)
        cal = holdout if holdout is not None and len(holdout.embeddings) > 1 else fit
        self.calibration = {"set": "holdout" if cal is holdout else "fit", "images": int(len(cal.embeddings))}
        maps = self.maps(cal)
        parts = self._parts(cal.embeddings, maps)
        self.stats = {k: [float(v.mean()), float(max(float(v.std(unbiased=False)), 1e-12))] for k, v in parts.items()}
        self.threshold = quantile_threshold(self._combine(parts).numpy(), self.quantile)
        if maps is not None:
            self.pixel_threshold = quantile_threshold(parts["map"].numpy(), self.quantile)
            lo = float(maps.median())
            self.map_range = [lo, lo + 2 * max(self.pixel_threshold - lo, 1e-6)]
        return self

    def score(self, out: Outputs) -> tuple[np.ndarray, torch.Tensor | None]:
        """(image scores (N,), smoothed maps (N, S, S) or None)."""
        maps = self.maps(out)
        return self._combine(self._parts(out.embeddings, maps)).numpy(), maps

    def is_finite(self) -> bool:
        """False when the density, the standardisation or a threshold holds NaN or infinity."""
        import math

        state = self.state_dict()
        values = [state["threshold"], state["pixel_threshold"], *(state["map_range"] or []),
                  *(v for pair in state["stats"].values() for v in pair)]
        tensors = [v for v in state["density"].values() if isinstance(v, torch.Tensor)]
        return (all(v is None or math.isfinite(v) for v in values)
                and all(bool(torch.isfinite(t).all()) for t in tensors if t is not None and t.is_floating_point()))

    def state_dict(self) -> dict:
        return {"format": FORMAT, "density": self.density.state_dict(), "image_score": self.image_score,
                "quantile": self.quantile, "image_size": self.image_size, "stats": self.stats,
                "threshold": self.threshold, "pixel_threshold": self.pixel_threshold, "map_range": self.map_range,
                "calibration": self.calibration}

    @classmethod
    def from_state(cls, state: dict) -> AnomalyScorer:
        """Load a state written by :meth:`state_dict` (or a bare density's state, from older checkpoints)."""
        self = cls()
        if state.get("format") != FORMAT:  # format 1 checkpoints: the density alone, image score = embedding
            self.density, self.image_score = scorer_from_state(state), "embedding"
            return self
        self.density = scorer_from_state(state["density"])
        for key in ("image_score", "quantile", "image_size", "stats", "threshold", "pixel_threshold", "map_range",
                    "calibration"):
            setattr(self, key, state[key])
        return self
