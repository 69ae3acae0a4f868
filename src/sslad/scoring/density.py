"""Densities fitted on embeddings of good images: ``fit`` / ``score`` objects with tensor state.

* :class:`GaussianDensity` (``gde``): L2-normalised embeddings, mean and Ledoit-Wolf shrunk
  covariance; the score is the Mahalanobis distance (the CutPaste paper's estimator).
* :class:`KNNDensity` (``knn``): mean Euclidean distance of the normalised embedding to its
  ``k`` nearest good training embeddings.
* :class:`PatchGaussian` (``gauss``, the default) and :class:`PatchKNN` (``knn``): patch densities over
  per-location patch descriptors, for anomaly maps (``score.map: density`` or ``both``; ``score.patch_density``):
  one Gaussian, or a coreset memory and the nearest-neighbour distance (PatchCore).

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


def greedy_coreset(x: torch.Tensor, n: int, seed: int = 0, dim: int = 128) -> torch.Tensor:
    """int64 (min(n, M),) indices of rows of ``x`` (M, C) chosen by greedy k-centre selection (each next row the
    one farthest from those chosen), on a seeded random projection to ``dim`` dimensions (PatchCore's coreset):
    a few thousand rows that cover the good descriptors, their rare kinds included, where a random sample keeps
    mostly the common ones."""
    if n >= len(x):
        return torch.arange(len(x))
    g = torch.Generator().manual_seed(seed)
    z = x.float()
    if z.shape[1] > dim:
        z = z @ (torch.randn(z.shape[1], dim, generator=g) / dim ** 0.5)
    sq = z.pow(2).sum(1)
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = int(torch.randint(len(z), (1,), generator=g))
    dist = torch.full((len(z),), float("inf"))
    new = torch.empty(len(z))
    for j in range(1, n):
        i = int(chosen[j - 1])
        torch.mv(z, z[i], out=new)
        new.mul_(-2).add_(sq).add_(sq[i])
        torch.minimum(dist, new, out=dist)
        chosen[j] = int(dist.argmax())
    return chosen


class PatchKNN:
    """A memory of good patch descriptors (PatchCore, Roth et al. 2022): a greedy coreset of ``bank`` descriptors
    of the fit images' locations; a location's anomaly value is the Euclidean distance to its nearest entry.
    Location-independent like :class:`PatchGaussian`, but many-modal: a texture with several kinds of good
    patches is not one ellipsoid (measured in docs/results.md: the same pixel AUROC as the Gaussian, and maps whose
    maxima rank images 4-7 points better, on both real sets; it costs a nearest-neighbour search per location)."""

    name = "patch_knn"

    def __init__(self, bank: int = 10_000, seed: int = 0) -> None:
        self.size, self.seed = int(bank), int(seed)
        self.bank: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> PatchKNN:
        """``x``: (M, C) descriptors sampled from the good images' locations."""
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError("the patch memory needs at least 1 descriptor")
        x = x.float()
        self.bank = x[greedy_coreset(x, self.size, self.seed)].contiguous()
        return self

    def _nearest(self, q: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        d2 = q.pow(2).sum(-1, keepdim=True) - 2 * q @ bank.T + bank.pow(2).sum(1)
        return d2.amin(-1).clamp_min(0).sqrt()

    def maps(self, feats: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """(N, C, h, w) descriptors -> float32 (N, 1, h, w) distances to the nearest memory entry (plain tensor ops:
        exportable; outside an export the locations go in chunks, so memory stays bounded)."""
        bank = self.bank.to(feats.device)
        q = feats.float().permute(0, 2, 3, 1)
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            return self._nearest(q, bank)[:, None]
        flat = q.reshape(-1, q.shape[-1])
        d = torch.cat([self._nearest(flat[i:i + chunk], bank) for i in range(0, len(flat), chunk)])
        return d.reshape(q.shape[:3])[:, None]

    def state_dict(self) -> dict:
        return {"type": self.name, "bank": self.bank.cpu(), "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict) -> PatchKNN:
        self.bank = state["bank"].float()
        self.size, self.seed = int(state.get("size", len(self.bank))), int(state.get("seed", 0))
        return self


#: The patch densities (what makes ``map: density``) by name (``sslad.config.PATCH_DENSITIES``: gauss, knn).
PATCH_TYPES = {"gauss": PatchGaussian, "knn": PatchKNN}
PatchDensity = PatchGaussian | PatchKNN


def patch_density_from_state(state: dict) -> PatchDensity:
    """A fitted patch density from its state (the type is in it: checkpoints before 0.6 hold a Gaussian)."""
    kind = state.get("type", PatchGaussian.name)
    cls = next((c for c in PATCH_TYPES.values() if c.name == kind), None)
    if cls is None:
        raise ValueError(f"unknown patch density type {kind!r} in checkpoint")
    return cls().load_state_dict(state)


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
