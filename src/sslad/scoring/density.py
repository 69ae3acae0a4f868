"""Densities fitted on embeddings of good images: ``fit`` / ``score`` objects with tensor state.

* :class:`GaussianDensity` (``gde``): L2-normalised embeddings, mean and Ledoit-Wolf shrunk
  covariance; the score is the Mahalanobis distance (the CutPaste paper's estimator).
* :class:`KNNDensity` (``knn``): mean Euclidean distance of the normalised embedding to its
  ``k`` nearest good training embeddings.
* :class:`PatchGaussian`: one Gaussian over per-location patch descriptors, for anomaly maps
  (``score.map: density``).

Both round-trip through ``state_dict`` (plain tensors, safe for ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslad.config import ScoreConfig


def ledoit_wolf(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Ledoit-Wolf shrunk covariance of rows of ``x`` (same estimate as scikit-learn's).

    Returns (covariance (D, D) float64, shrinkage in [0, 1]).
    """
    x = x.to(torch.float64)
    n, p = x.shape
    xc = x - x.mean(0, keepdim=True)
    emp = xc.T @ xc / n
    mu = torch.trace(emp) / p
    x2 = xc * xc
    beta_ = (x2.T @ x2).sum()
    delta_ = (emp * emp).sum()
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * torch.trace(emp) + p * mu * mu) / p
    beta = torch.minimum(beta, delta)
    shrink = 0.0 if float(beta) == 0.0 else float(beta / delta)
    cov = (1.0 - shrink) * emp + shrink * mu * torch.eye(p, dtype=torch.float64, device=x.device)
    return cov, shrink


def fit_gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(mean (D,), precision (D, D), both float64, shrinkage) of rows of ``x``: Ledoit-Wolf covariance, inverted."""
    x = x.detach().to(torch.float64)
    cov, shrink = ledoit_wolf(x)
    return x.mean(0), torch.linalg.pinv(cov, hermitian=True), shrink


class GaussianDensity:
    """Single Gaussian on L2-normalised embeddings; Mahalanobis distance as anomaly score."""

    name = "gde"

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None
        self.shrinkage: float = 0.0

    def fit(self, emb: torch.Tensor) -> GaussianDensity:
        if emb.ndim != 2 or emb.shape[0] < 2:
            raise ValueError("the Gaussian density needs at least 2 embeddings")
        self.mean, self.precision, self.shrinkage = fit_gaussian(F.normalize(emb.detach().to(torch.float64), dim=1))
        return self

    def score(self, emb: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("fit the density before scoring")
        z = F.normalize(emb.detach().to(torch.float64), dim=1).to(self.mean.device) - self.mean
        d2 = ((z @ self.precision) * z).sum(1).clamp_min(0)
        return d2.sqrt().to(torch.float32)

    def state_dict(self) -> dict:
        return {"type": self.name, "mean": self.mean.cpu(), "precision": self.precision.cpu(),
                "shrinkage": float(self.shrinkage)}

    def load_state_dict(self, state: dict) -> GaussianDensity:
        self.mean = state["mean"].to(torch.float64)
        self.precision = state["precision"].to(torch.float64)
        self.shrinkage = float(state.get("shrinkage", 0.0))
        return self


class KNNDensity:
    """Mean distance to the k nearest good training embeddings (L2-normalised)."""

    name = "knn"

    def __init__(self, k: int = ScoreConfig.knn_k) -> None:
        self.k = int(k)
        self.bank: torch.Tensor | None = None

    def fit(self, emb: torch.Tensor) -> KNNDensity:
        if emb.ndim != 2 or emb.shape[0] < 1:
            raise ValueError("kNN needs at least one embedding")
        self.bank = F.normalize(emb.detach().float(), dim=1).cpu()
        return self

    def score(self, emb: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        if self.bank is None:
            raise RuntimeError("fit the density before scoring")
        k = min(self.k, self.bank.shape[0])
        z = F.normalize(emb.detach().float().cpu(), dim=1)
        out = []
        for i in range(0, z.shape[0], chunk):
            d = torch.cdist(z[i:i + chunk], self.bank)
            out.append(d.topk(k, dim=1, largest=False).values.mean(1))
        return torch.cat(out) if out else torch.empty(0)

    def state_dict(self) -> dict:
        return {"type": self.name, "k": self.k, "bank": self.bank}

    def load_state_dict(self, state: dict) -> KNNDensity:
        self.k = int(state["k"])
        self.bank = state["bank"].float()
        return self


class PatchGaussian:
    """One Gaussian over the patch descriptors of every location of the good images (mean and Ledoit-Wolf
    shrunk covariance, no normalisation: a descriptor's magnitude carries texture contrast); a location's
    Mahalanobis distance is its anomaly value. Location-independent, so any image size and any position
    share one model (PaDiM fits one per position, which needs aligned objects and much memory)."""

    name = "patch_gaussian"

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None
        self.shrinkage: float = 0.0

    def fit(self, x: torch.Tensor) -> PatchGaussian:
        """``x``: (M, C) descriptors sampled from the good images' locations."""
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError("the patch density needs at least 2 descriptors")
        mean, precision, self.shrinkage = fit_gaussian(x)
        self.mean, self.precision = mean.float(), precision.float()
        return self

    def maps(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) descriptors -> float32 (N, 1, h, w) Mahalanobis distances (plain tensor ops: exportable)."""
        z = feats.float().permute(0, 2, 3, 1) - self.mean.to(feats.device)
        d2 = ((z @ self.precision.to(feats.device)) * z).sum(-1)
        return d2.clamp_min(0).sqrt()[:, None]

    def state_dict(self) -> dict:
        return {"type": self.name, "mean": self.mean.cpu(), "precision": self.precision.cpu(),
                "shrinkage": float(self.shrinkage)}

    def load_state_dict(self, state: dict) -> PatchGaussian:
        self.mean, self.precision = state["mean"].float(), state["precision"].float()
        self.shrinkage = float(state.get("shrinkage", 0.0))
        return self


#: The density classes by name; their names are ``sslad.config.DENSITIES`` (checked by a test).
DENSITY_TYPES = {cls.name: cls for cls in (GaussianDensity, KNNDensity)}
Density = GaussianDensity | KNNDensity


def make_density(cfg: ScoreConfig) -> Density:
    """An unfitted density of the configured kind."""
    return KNNDensity(cfg.knn_k) if cfg.density == KNNDensity.name else DENSITY_TYPES[cfg.density]()


def density_from_state(state: dict) -> Density:
    kind = state.get("type")
    if kind not in DENSITY_TYPES:
        raise ValueError(f"unknown density type {kind!r} in checkpoint")
    return DENSITY_TYPES[kind]().load_state_dict(state)
