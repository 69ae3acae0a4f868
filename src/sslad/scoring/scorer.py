"""From network outputs to decisions: image scores, anomaly maps and thresholds that hold on new images.

Vocabulary: a *density* (:mod:`sslad.scoring.density`) scores embeddings; the :class:`Scorer`
here combines it with the per-pixel maps into image scores and calibrates thresholds; the
*detector* (``sslad.Detector``) is a network plus its scorer, from images to decisions.

The scorer sees plain tensors only, never images or the network: embeddings ``(N, D)`` and
low-resolution per-pixel anomaly values ``(N, 1, h, w)`` (the per-pixel head's probabilities, or the
patch density's distances; or ``None``), and the side ``S``
of the maps to make. It fits the density on the embeddings of the *fit* part of the good
training images and calibrates on the *held-out* part, which neither the density nor the
network has seen (``sslad.data.holdout_split``):

* maps (``map``): ``seg``, the network's per-pixel probabilities; ``density``, the distance
  of each location's patch descriptor to the nearest of a coreset memory of the fit images' locations
  (``patch_density: knn``, :class:`~sslad.scoring.density.PatchKNN`) or its Mahalanobis distance under one
  Gaussian fitted on them (``gauss``; the scorer turns descriptors into maps); or ``both``,
  the two averaged, each first put on its own held-out scale (median pixel to the 99 % map threshold);
* patch descriptors: the network hands over its trunk's layer2-4 maps (a :class:`Levels`); a patch density's
  descriptors are those of the stages ``map_layers`` names (layer2-3 at 1/8 of the side by default, or layer3-4
  at 1/16: wider context, the large low-contrast regions filled), the ``pooled+peak`` embedding's always layer2-3's;
* embedding (``embedding``): what the density scores: the network's pooled embedding (``pooled``), or that
  and the global maximum of the layer2-3 patch descriptors per channel (``pooled+peak``, :func:`peak_embedding`: a
  local defect moves a maximum, where it is averaged away in a pooled mean);
* tiles (``tile``): with a tile side, the network scores overlapping tiles (``sslad.models.tiles``): the
  density is fitted on the tiles' embeddings ``(N, T, D)`` and an image's embedding score is its most
  anomalous tile's; the maps arrive stitched;
* whole view (``whole_view``): with a side, the whole image resized to it is embedded too, with a density of its
  own: the image's embedding score is then the sum of the two views' log scores, each standardised on the held-out
  images and floored at ``VIEW_Z_FLOOR`` (tiles see small defects, the whole image large low-contrast ones;
  neither outweighs nor hides the other);
* image score (``image_score``): ``embedding`` (the density's score), ``map`` (the maximum of the
  smoothed anomaly map) or ``both`` (the sum of the two, each standardised by its mean and
  standard deviation on the held-out images); ``auto`` picks the one with the best AUROC on a
  *synthetic* set: pretext anomalies rendered onto the held-out images (no test label is used);
* image threshold: the ``quantile`` of the held-out image scores, read off them by ``threshold_rule``: the
  bound a new good image's score passes with probability 1 - ``quantile`` when their top fifth is an exponential
  tail, at any number of them (``predictive``), that tail's quantile at its fitted scale (``tail``, 0.8's rule),
  or their empirical quantile (``quantile``, joined by their augmented views' scores below ``views_below``
  held-out images);
* pixel threshold: the same of the held-out images' map maxima (a good image has no pixel
  above it with that probability), and the map display range ``[median held-out pixel, 2x the
  threshold's distance above it]``, so overlays of every image share one colour scale.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from sslad.config import ScoreConfig
from sslad.scoring.density import (
    PATCH_TYPES,
    PatchDensity,
    PatchKNN,
    density_from_state,
    make_density,
    patch_density_from_state,
)
from sslad.scoring.maps import smooth_maps, to_image_maps
from sslad.scoring.metrics import auroc, predictive_threshold, quantile_threshold, tail_threshold

FORMAT = "sslad-scorer"
#: Whole view: a view's standardised log score counts down to this and no further (a view that finds an image
#: far more ordinary than the held-out ones, e.g. a near-zero distance, must not hide what the other view sees).
VIEW_Z_FLOOR = -3.0


#: The trunk stages whose patch descriptors the ``pooled+peak`` embedding takes its maximum over.
PEAK_STAGES = (2, 3)


class Levels(Protocol):
    """What the network hands the scorer beside its embeddings: its trunk maps, from which the patch descriptors
    of any stages are made (``sslad.models.net.PatchLevels``)."""

    def descriptors(self, stages: tuple[int, ...]) -> torch.Tensor: ...


def parse_stages(text: str) -> tuple[int, ...]:
    """``"3,4"`` -> ``(3, 4)``: a ``map_layers`` setting as trunk stages (``auto``: layer2-3 until the run's fit
    chooses, ``training.choose_map_layers``)."""
    return PEAK_STAGES if text == "auto" else tuple(int(k) for k in str(text).split(","))


def simplest_within(values: dict[str, float], order: list[str], margin: float) -> str:
    """The first of ``order`` whose value (NaN: none) is within ``margin`` of the best: what an ``auto`` setting
    keeps, so a more complex choice must win by more than the noise of a few hundred synthetic samples."""
    clean = {k: float(np.nan_to_num(values[k], nan=-1.0)) for k in order}
    best = max(clean.values())
    return next(k for k in order if clean[k] >= best - margin)


def peak_embedding(pooled: torch.Tensor, levels: Levels) -> torch.Tensor:
    """float32 (N, D + C): the pooled embedding (N, D) and the per-channel global maximum of the layer2-3 patch
    descriptors (N, C, h, w), each L2-normalised (neither outweighs the other by its scale), joined, unit length."""
    peak = levels.descriptors(PEAK_STAGES).float().amax((2, 3))
    return torch.cat([F.normalize(pooled.float(), dim=1), F.normalize(peak, dim=1)], 1) / math.sqrt(2)


#: config.THRESHOLD_RULES: each rule's function of (held-out scores, quantile)
THRESHOLD_FUNCTIONS = {"predictive": predictive_threshold, "tail": tail_threshold, "quantile": quantile_threshold}


class Scorer:
    """Image scores, maps and thresholds from network outputs (see the module docstring)."""

    def __init__(self, cfg: ScoreConfig | None = None):
        cfg = cfg or ScoreConfig()
        self.density = make_density(cfg)
        self.image_score = cfg.image_score
        self.embedding = cfg.embedding  # pooled, or pooled+peak (made from the patch descriptors: embed_fn)
        self.quantile = cfg.threshold_quantile
        self.threshold_rule = cfg.threshold_rule
        self.views_below = cfg.views_below
        self.auto_margin = cfg.auto_margin
        self.tile = cfg.tile  # > 0: the network scores tiles of this side; embeddings arrive as (N, T, D)
        self.tile_overlap = cfg.tile_overlap  # the least share of a tile its neighbours overlap by
        self.tile_pass = cfg.tile_pass  # each: a pass per tile; once: tiles pooled from one whole pass; maps-once
        self.whole_view = cfg.whole_view  # > 0: whole images at this side too, scored by their own density
        self.whole_density = make_density(cfg) if cfg.whole_view else None
        # what the network's outputs are computed in (fp32 | bf16, resolved on the device by training.fit_scorer):
        # the density and thresholds are fitted on them, so every later scoring computes them the same way
        self.precision: str | None = cfg.inference_precision
        self.view_stats: list[list[float]] = []  # whole view: [mean, std] of each view's log score, held out
        self.map_source = cfg.map  # seg: the head's probabilities; density: the patch density's; both: averaged
        # both: the head's share of the average, the patch density's 1 - it; auto: 0.5 until the run's fit chooses
        # (training.choose_map_weight), each candidate's AUPRO on probe anomalies recorded in probe_aupro
        self.map_weight = 0.5 if cfg.map_weight == "auto" else float(cfg.map_weight)
        self.probe_aupro: dict[str, float] = {}
        self.patch_density, self.patch_bank = cfg.patch_density, cfg.patch_bank  # what fit_patches fits
        self.map_layers = parse_stages(cfg.map_layers)  # the trunk stages the patch density's descriptors are of
        self.patches: PatchDensity | None = None
        self.map_scales: dict[str, list[float]] = {}  # map: both -> {source: [held-out median, 99 % of maxima]}
        self.stats: dict[str, list[float]] = {}
        self.threshold: float | None = None
        self.pixel_threshold: float | None = None
        self.map_range: list[float] | None = None
        self.calibration = {"set": None, "images": 0}
        self.synthetic_auroc: dict[str, float] = {}  # image-score mode -> AUROC on the synthetic held-out set
        self.synthetic_map_auroc: dict[str, float] = {}  # map_layers: auto -> each choice's synthetic pixel AUROC

    def fit_patches(self, descriptors: torch.Tensor) -> Scorer:
        """Fit the patch density (``map: density`` or ``both``) on (M, C) descriptors of the fit images'
        locations; done before the maps of any image are made (they come from it)."""
        kind = PATCH_TYPES[self.patch_density]
        self.patches = (kind(self.patch_bank) if kind is PatchKNN else kind()).fit(descriptors)
        return self

    def fit_map_scales(self, parts: torch.Tensor, size: int) -> Scorer:
        """``map: both``: each source's scale on the held-out images' (N, 2, h, w) :attr:`parts_fn` maps,
        (median pixel, ``quantile`` of the map maxima) of its own smoothed maps, so the two average on equal
        terms without a test label."""
        self.map_scales = {k: list(self._map_scale(self.maps(parts[:, i:i + 1], size)))
                           for i, k in enumerate(("seg", "density"))}
        return self

    def _map_scale(self, maps: torch.Tensor) -> tuple[float, float]:
        lo = float(maps.median())
        top = quantile_threshold(maps.flatten(1).amax(1).double().numpy(), self.quantile)
        return lo, max(top, lo + 1e-6)

    def _density_part(self, probs: torch.Tensor | None, levels: Levels) -> torch.Tensor:
        return self.patches.maps(levels.descriptors(self.map_layers))

    def parts_fn(self, probs: torch.Tensor | None, levels: Levels) -> torch.Tensor:
        """(N, 2, h, w): the per-pixel head's probabilities and the patch density's map, unscaled, at the head's
        resolution: what ``map: both`` scales (:meth:`fit_map_scales`) and averages (:meth:`combine_parts`)."""
        d = F.interpolate(self._density_part(probs, levels), size=probs.shape[-2:], mode="bilinear",
                          align_corners=False)
        return torch.cat([probs.float(), d], 1)

    def scale_parts(self, parts: torch.Tensor) -> torch.Tensor:
        """(N, 2, h, w) :meth:`parts_fn` maps -> the same, each source on its held-out scale (its held-out median
        at 0, the ``quantile`` of its held-out maxima at 1)."""
        (ls, ts), (ld, td) = self.map_scales["seg"], self.map_scales["density"]
        return torch.cat([(parts[:, :1] - ls) / (ts - ls), (parts[:, 1:] - ld) / (td - ld)], 1)

    def combine_parts(self, parts: torch.Tensor) -> torch.Tensor:
        """(N, 2, h, w) :meth:`parts_fn` maps -> (N, 1, h, w): each source on its held-out scale
        (:meth:`scale_parts`), averaged with ``map_weight`` the head's share (linear, so tiles stitched before or
        after it give the same map)."""
        return self.join_parts(self.scale_parts(parts), self.map_weight)

    @staticmethod
    def join_parts(scaled: torch.Tensor, weight: float) -> torch.Tensor:
        """(N, 2, h, w) :meth:`scale_parts` maps -> (N, 1, h, w): ``weight`` x the head's + (1 - ``weight``) x the
        density's (at 0.5 the mean of the two to the bit: halving is exact)."""
        return weight * scaled[:, :1] + (1 - weight) * scaled[:, 1:]

    def _both(self, probs: torch.Tensor | None, levels: Levels) -> torch.Tensor:
        """The per-pixel head's and the patch density's maps, each on its held-out scale, averaged at the
        head's resolution."""
        return self.combine_parts(self.parts_fn(probs, levels))

    @property
    def map_fn(self):
        """What makes the maps from the network's per-pixel probabilities and patch descriptors (``map:
        density`` or ``both``), or None: the network's per-pixel head makes them (``seg``)."""
        if self.map_source == "seg":
            return None
        if self.patches is None:
            raise RuntimeError("fit the patch density (fit_patches) before making maps")
        if self.map_source == "density":
            return self._density_part
        if not self.map_scales:
            raise RuntimeError("fit the map scales (fit_map_scales) before making maps")
        return self._both

    @property
    def embed_fn(self):
        """What makes the density's embeddings from the network's pooled embeddings and patch descriptors
        (``embedding: pooled+peak``), or None: the pooled embeddings themselves."""
        return peak_embedding if self.embedding == "pooled+peak" else None

    @property
    def uses_maps(self) -> bool:
        return self.image_score in ("map", "both")

    def _choose(self, parts: dict[str, torch.Tensor], anomalous: np.ndarray) -> str:
        """The simplest image-score mode (embedding, then map, then both) whose AUROC on the synthetic anomalies
        is within ``auto_margin`` of the best: a more complex mode must win by more than the noise of a
        few hundred synthetic samples (measured: on 6 runs, a margin of 0 picked "both" 5 times for
        0.1-0.7 points of synthetic AUROC, which cost 0.7-3.0 points of real AUROC)."""
        scores = self._every_mode(parts)
        self.synthetic_auroc.update({mode: auroc(anomalous, v) for mode, v in scores.items()})
        return simplest_within(self.synthetic_auroc, list(scores), self.auto_margin)

    def mode_scores(self, embeddings: torch.Tensor, probs: torch.Tensor | None, size: int,
                    whole: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """float64 (N,) image scores of every mode this scorer can give (``embedding``; ``map`` and ``both`` when
        there are maps), whichever it uses: what the synthetic yardstick compares, for any set of images."""
        return self._every_mode(self._parts(embeddings, self.maps(probs, size), whole))

    def _every_mode(self, parts: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        modes = ("embedding", "map", "both") if "map" in parts else ("embedding",)
        return {mode: self._combine(parts, mode).numpy() for mode in modes}

    @staticmethod
    def maps(probs: torch.Tensor | None, size: int) -> torch.Tensor | None:
        """float32 (N, S, S) smoothed anomaly maps of (N, 1, h, w) probabilities, or None without them."""
        return None if probs is None else to_image_maps(probs, size)

    def _view_scores(self, embeddings: torch.Tensor, whole: torch.Tensor | None) -> list[torch.Tensor]:
        """float64 (N,) density score of each view: the embeddings' (the most anomalous tile's for (N, T, D) tile
        embeddings), then the whole images' (``whole_view``)."""
        if embeddings.ndim == 3:
            dens = self.density.score(embeddings.flatten(0, 1)).reshape(embeddings.shape[:2]).amax(1)
        else:
            dens = self.density.score(embeddings)
        if not self.whole_view:
            return [dens.double()]
        if whole is None:
            raise ValueError(f"this scorer joins a whole view at {self.whole_view} px: pass its embeddings (whole=)")
        return [dens.double(), self.whole_density.score(whole).double()]

    @staticmethod
    def _log(scores: torch.Tensor) -> torch.Tensor:
        return torch.log(scores.clamp_min(1e-12))  # the Gaussian's squared distances are heavy-tailed

    def _parts(self, embeddings: torch.Tensor, maps: torch.Tensor | None,
               whole: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """float64 (N,) score of each part: the density on the embeddings (with a whole view, the sum of the
        views' standardised log scores), the maximum of each map."""
        views = self._view_scores(embeddings, whole)
        dens = views[0] if len(views) == 1 else sum(((self._log(v) - m) / sd).clamp_min(VIEW_Z_FLOOR)
                                                    for v, (m, sd) in zip(views, self.view_stats, strict=True))
        parts = {"embedding": dens}
        if maps is not None:
            parts["map"] = maps.flatten(1).amax(1).double()
        return parts

    def _combine(self, parts: dict[str, torch.Tensor], mode: str | None = None) -> torch.Tensor:
        """The image scores of ``mode`` (default: the scorer's own) from :meth:`_parts`."""
        mode = mode or self.image_score
        if mode == "both":
            return sum((parts[k] - self.stats[k][0]) / self.stats[k][1] for k in ("embedding", "map"))
        return parts[mode]

    @staticmethod
    def calibrates_on_holdout(n_holdout: int) -> bool:
        """Whether ``n_holdout`` held-out images set the standardisation and thresholds (else the fit images)."""
        return n_holdout > 1

    def fit(self, embeddings: torch.Tensor, probs: torch.Tensor | None, size: int,
            holdout: tuple[torch.Tensor, torch.Tensor | None] | None = None,
            synthetic: tuple[torch.Tensor, torch.Tensor | None, np.ndarray] | None = None,
            whole: torch.Tensor | None = None) -> Scorer:
        """Density on ``embeddings``; standardisation and thresholds on ``holdout`` = (embeddings, probs)
        of the held-out good images (on the fit images themselves when there are fewer than 2). With a whole
        view, ``whole`` holds the fit images' whole-view embeddings, and each set's tuple ends with its own.

        ``synthetic`` = (embeddings, probs, anomalous (N,) bool) of pretext samples rendered onto the
        held-out images: with ``image_score="auto"`` the mode with the best AUROC on them is kept
        (``embedding`` when there is no synthetic set). With ``threshold_rule: quantile`` and fewer than
        ``views_below`` images held out (their 99th percentile is little more than their maximum), the synthetic
        set's good rows, augmented views of the same images, join them for the thresholds.
        """
        use_holdout = holdout is not None and self.calibrates_on_holdout(len(holdout[0]))
        cal_emb, cal_probs, cal_whole = _with_whole(holdout) if use_holdout else (embeddings, probs, whole)
        if self.uses_maps and cal_probs is None:
            raise ValueError(f"image score {self.image_score!r} needs a network with a per-pixel head")
        self.density.fit(embeddings.flatten(0, 1) if embeddings.ndim == 3 else embeddings)
        if self.whole_view:
            if whole is None or cal_whole is None:
                raise ValueError(f"this scorer joins a whole view at {self.whole_view} px: pass its embeddings")
            self.whole_density.fit(whole)
            self.view_stats = [[float(x.mean()), float(max(float(x.std(unbiased=False)), 1e-12))]
                               for x in map(self._log, self._view_scores(cal_emb, cal_whole))]
        self.calibration = {"set": "holdout" if use_holdout else "fit", "images": int(len(cal_emb)),
                            "rule": self.threshold_rule}
        maps = self.maps(cal_probs, size)
        parts = self._parts(cal_emb, maps, cal_whole)
        self.stats = {k: [float(v.mean()), float(max(float(v.std(unbiased=False)), 1e-12))] for k, v in parts.items()}
        if synthetic is not None:  # every mode's synthetic AUROC is recorded; "auto" keeps the best
            fixed, (emb, sprobs, anomalous, swhole) = self.image_score, _with_whole(synthetic, 3)
            chosen = self._choose(self._parts(emb, self.maps(sprobs, size), swhole), np.asarray(anomalous))
            if self.whole_view:  # each view alone, beside the joined "embedding": does the join help here?
                views = zip(("view:main", "view:whole"), self._view_scores(emb, swhole), strict=True)
                self.synthetic_auroc.update({k: auroc(np.asarray(anomalous), v.numpy()) for k, v in views})
            self.image_score = chosen if fixed == "auto" else fixed
        elif self.image_score == "auto":
            self.image_score = "embedding"
        lo = None if maps is None else float(maps.median())
        few = use_holdout and len(cal_emb) < self.views_below
        if self.threshold_rule == "quantile" and synthetic is not None and few:
            good = ~torch.as_tensor(np.asarray(synthetic[2]))
            view_probs = None if sprobs is None else sprobs[good]
            views = self._parts(emb[good], self.maps(view_probs, size), None if swhole is None else swhole[good])
            parts = {k: torch.cat([v, views[k]]) for k, v in parts.items()}
            self.calibration["views"] = int(good.sum())
        self._set_thresholds(self._combine(parts).numpy(), None if maps is None else parts["map"].numpy(), lo)
        return self

    def _set_thresholds(self, scores: np.ndarray, map_maxima: np.ndarray | None, map_median: float | None) -> None:
        rule = THRESHOLD_FUNCTIONS[self.threshold_rule]
        self.threshold = rule(scores, self.quantile)
        self.calibration["scores"] = {"median": float(np.median(scores)), "max": float(np.max(scores))}
        if map_maxima is not None:
            self.pixel_threshold = rule(map_maxima, self.quantile)
            self.map_range = [map_median, map_median + 2 * max(self.pixel_threshold - map_median, 1e-6)]

    def recalibrate(self, scores: np.ndarray, maps: torch.Tensor | None, quantile: float | None = None,
                    rule: str | None = None) -> dict:
        """New thresholds at another ``quantile`` or ``rule`` from the calibration images' image scores and
        maps as :meth:`score` gives them (the images :meth:`fit` set the thresholds on); the density, the
        standardisation and the map scales stay, so scores and maps do not change. The previous quantile, rule
        and thresholds are returned and kept in ``calibration["previous"]``. The ``quantile`` rule below
        ``views_below`` images joined their augmented views, which only a training renders: a ValueError."""
        quantile = self.quantile if quantile is None else float(quantile)
        rule = self.threshold_rule if rule is None else rule
        if rule not in THRESHOLD_FUNCTIONS or not 0 < quantile <= 1:
            raise ValueError(f"threshold rule {rule!r} at quantile {quantile} (rules: {', '.join(THRESHOLD_FUNCTIONS)};"
                             " quantile in (0, 1])")
        if rule == "quantile" and len(scores) < self.views_below and self.calibration.get("set") == "holdout":
            raise ValueError(f"the quantile rule joins the augmented views of fewer than {self.views_below} held-out "
                             f"images ({len(scores)} here), which only training renders: use predictive or tail")
        previous = {"quantile": self.quantile, "rule": self.threshold_rule, "threshold": self.threshold,
                    "pixel_threshold": self.pixel_threshold, "map_range": self.map_range}
        self.quantile, self.threshold_rule = quantile, rule
        history = [*self.calibration.get("previous", []), previous]
        self.calibration = {**{k: v for k, v in self.calibration.items() if k not in ("views", "scores")},
                            "rule": rule, "previous": history}
        maxima = None if maps is None else maps.flatten(1).amax(1).double().numpy()
        self._set_thresholds(np.asarray(scores, dtype=np.float64), maxima,
                             None if maps is None else float(maps.median()))
        return previous

    def margin_note(self) -> str | None:
        """One line when the image threshold lies further above the calibration images' largest score than that
        lies above their median: too few images for the quantile (the predictive rule's margin is wide), and
        few defects will pass it."""
        st = self.calibration.get("scores")
        if not st or self.threshold is None or st["max"] <= st["median"]:
            return None
        ratio = (self.threshold - st["max"]) / (st["max"] - st["median"])
        if ratio <= 1:
            return None
        return (f"the image threshold {self.threshold:.4g} lies {ratio:.1f}x the calibration scores' spread (maximum - "
                f"median) above their maximum {st['max']:.4g}: {self.calibration.get('images')} good images set a "
                f"{self.quantile} quantile only with a wide margin, so few defects will pass it; lower it with sslad "
                "calibrate RUN_DIR --threshold-quantile Q (0.95 flags about 5 % of good images), or hold out more")

    def score(self, embeddings: torch.Tensor, probs: torch.Tensor | None, size: int,
              whole: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
        """(float64 image scores (N,), smoothed maps float32 (N, S, S) or None); ``whole``: the whole-view
        embeddings (``whole_view``)."""
        maps = self.maps(probs, size)
        return self._combine(self._parts(embeddings, maps, whole)).numpy(), maps

    def score_tensors(self, embeddings: torch.Tensor, probs: torch.Tensor | None, size: int,
                      whole: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`score` as plain tensor ops for one batch (what the exported model runs): (float64
        scores (N,), maps (N, S, S), or an empty (N, 0, 0) tensor without a per-pixel head)."""
        maps = None if probs is None else smooth_maps(probs, size)
        scores = self._combine(self._parts(embeddings, maps, whole))
        return scores, maps if maps is not None else embeddings.new_zeros((embeddings.shape[0], 0, 0))

    def is_finite(self) -> bool:
        """False when the density, the standardisation or a threshold holds NaN or infinity."""
        state = self.state_dict()
        values = [state["threshold"], state["pixel_threshold"], *(state["map_range"] or []),
                  *(v for pair in state["map_scales"].values() for v in pair),
                  *(v for pair in state["stats"].values() for v in pair),
                  *(v for pair in state["view_stats"] for v in pair)]
        tensors = [v for part in (state["density"], state["patches"] or {}, state["whole_density"] or {})
                   for v in part.values() if isinstance(v, torch.Tensor)]
        return (all(v is None or math.isfinite(v) for v in values)
                and all(bool(torch.isfinite(t).all()) for t in tensors if t is not None and t.is_floating_point()))

    def state_dict(self) -> dict:
        return {"format": FORMAT, "density": self.density.state_dict(), "image_score": self.image_score,
                "quantile": self.quantile, "threshold_rule": self.threshold_rule, "stats": self.stats,
                "threshold": self.threshold, "pixel_threshold": self.pixel_threshold, "map_range": self.map_range,
                "calibration": self.calibration, "synthetic_auroc": self.synthetic_auroc, "tile": self.tile,
                "tile_overlap": self.tile_overlap, "tile_pass": self.tile_pass,
                "map_source": self.map_source, "map_scales": self.map_scales, "map_weight": self.map_weight,
                "probe_aupro": self.probe_aupro, "embedding": self.embedding,
                "map_layers": list(self.map_layers), "synthetic_map_auroc": self.synthetic_map_auroc,
                "patches": None if self.patches is None else self.patches.state_dict(),
                "whole_view": self.whole_view, "view_stats": self.view_stats, "precision": self.precision,
                "whole_density": None if self.whole_density is None else self.whole_density.state_dict()}

    @classmethod
    def from_state(cls, state: dict, threshold: float | None = None) -> Scorer:
        """Load a state written by :meth:`state_dict`; format-1 checkpoints held the density alone (image
        score = embedding) and the ``threshold`` beside it."""
        self = cls()
        if state.get("format") != FORMAT:
            self.density, self.image_score, self.threshold = density_from_state(state), "embedding", threshold
            return self
        self.density = density_from_state(state["density"])
        for key in ("image_score", "quantile", "stats", "threshold", "pixel_threshold", "map_range", "calibration"):
            setattr(self, key, state[key])
        self.synthetic_auroc = dict(state.get("synthetic_auroc") or {})
        self.threshold_rule = str(state.get("threshold_rule", "quantile"))  # before 0.8: the empirical quantile
        self.tile = int(state.get("tile", 0))
        self.tile_overlap = float(state.get("tile_overlap", 0.5))  # before 0.9.2: half a tile
        self.tile_pass = str(state.get("tile_pass", "each"))  # before 0.9.2: a pass per tile
        self.map_source = str(state.get("map_source", "seg"))
        self.embedding = str(state.get("embedding", "pooled"))  # before 0.5: the pooled embedding alone
        self.map_scales = dict(state.get("map_scales") or {})
        self.map_weight = float(state.get("map_weight", 0.5))  # before 0.9.7: the plain mean
        self.probe_aupro = dict(state.get("probe_aupro") or {})  # before 0.9.8: none
        self.map_layers = tuple(int(k) for k in state.get("map_layers") or (2, 3))  # before 0.7.15: layer2-3
        self.synthetic_map_auroc = dict(state.get("synthetic_map_auroc") or {})
        self.whole_view = int(state.get("whole_view") or 0)  # before 0.7: no whole view
        self.precision = state.get("precision")  # before 0.7.10: None, scored in bf16 on CUDA and fp32 on a CPU
        self.view_stats = [list(v) for v in state.get("view_stats") or []]
        self.whole_density = density_from_state(state["whole_density"]) if state.get("whole_density") else None
        if state.get("patches"):
            self.patches = patch_density_from_state(state["patches"])
            self.patch_density = next(k for k, c in PATCH_TYPES.items() if isinstance(self.patches, c))
        return self


def _with_whole(outputs: tuple, n: int = 2) -> tuple:
    """A set's tuple (its first ``n`` items, then its whole-view embeddings or None when it has none)."""
    return (*outputs[:n], outputs[n] if len(outputs) > n else None)
