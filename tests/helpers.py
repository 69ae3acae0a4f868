"""Tiny MVTec-layout datasets for tests, generated on the fly (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey stripe texture with noise, like a machined surface (uint8, HxWx3)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    base = 128 + 40 * np.sin(x / 3.0 + phase) + rng.normal(0, 6, (size, size))
    img = np.clip(base, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def defect(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint a dark blob; return (image, 0/255 mask)."""
    size = img.shape[0]
    out = img.copy()
    mask = np.zeros((size, size), dtype=np.uint8)
    r = max(2, size // 8)
    cy, cx = rng.integers(r, size - r, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    out[m] = 20
    mask[m] = 255
    return out, mask


def make_mvtec(root: Path, size: int = 40, n_train: int = 12, n_good: int = 6, n_bad: int = 6,
               seed: int = 0, defect_types: tuple[str, ...] = ("blob",)) -> Path:
    """Write ``root/train/good``, ``root/test/{good,<type>}``, ``root/ground_truth/<type>``."""
    rng = np.random.default_rng(seed)
    (root / "train" / "good").mkdir(parents=True, exist_ok=True)
    (root / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        Image.fromarray(texture(rng, size)).save(root / "train" / "good" / f"{i:03d}.png")
    for i in range(n_good):
        Image.fromarray(texture(rng, size)).save(root / "test" / "good" / f"{i:03d}.png")
    for t in defect_types:
        (root / "test" / t).mkdir(parents=True, exist_ok=True)
        (root / "ground_truth" / t).mkdir(parents=True, exist_ok=True)
        for i in range(n_bad):
            img, mask = defect(rng, texture(rng, size))
            Image.fromarray(img).save(root / "test" / t / f"{i:03d}.png")
            Image.fromarray(mask).save(root / "ground_truth" / t / f"{i:03d}_mask.png")
    return root


def base_images(n: int = 6, size: int = 48, seed: int = 0):
    """uint8 (n, 3, size, size) renderer inputs: a diagonal gradient plus per-image noise (every pixel differs)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 255, size)
    grad = (0.5 * x[None, :, None] + 0.5 * x[None, None, :]).expand(3, size, size)
    noise = torch.randint(0, 60, (n, 3, size, size), generator=g).float()
    return (grad[None] * 0.7 + noise).clamp(0, 255).to(torch.uint8)


def render_images(*args, **kw):
    """The images of the torch ``render`` (which returns images and masks)."""
    from sslad.synth import render

    return render(*args, **kw)[0]


def box_coords(plan, i: int, size: int):
    """Absolute local coordinates (|u|, |v|) of every pixel centre in row ``i``'s pasted box frame.

    A pixel is inside the pasted box when ``u <= w/2`` and ``v <= h/2`` (the renderers map
    destination to source with the inverse rotation about the box centre).
    """
    import math

    import torch

    cy, cx = plan.center[i].tolist()
    a = math.radians(plan.angle[i].item())
    ys = torch.arange(size) + 0.5
    gy, gx = torch.meshgrid(ys, ys, indexing="ij")
    dx, dy = gx - cx, gy - cy
    return (math.cos(a) * dx - math.sin(a) * dy).abs(), (math.sin(a) * dx + math.cos(a) * dy).abs()


def auroc_of_scores_csv(path) -> float:
    """Image AUROC recomputed from a run's ``scores.csv`` (to check ``metrics.json`` against)."""
    import csv

    from sklearn.metrics import roc_auc_score

    rows = list(csv.DictReader(open(path)))
    return float(roc_auc_score([int(r["label"]) for r in rows], [float(r["score"]) for r in rows]))


def assert_onnx_export_matches(run, files, out, rtol: float = 1e-4, map_atol: float | None = None) -> None:
    """``sslad export RUN --out OUT`` (ONNX) scores ``files`` under onnxruntime as ``sslad.load(RUN)`` does: the
    scores within ``rtol`` of the score range, the maps within ``map_atol`` (default ``rtol`` of the map range)."""
    import pytest

    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from click.testing import CliRunner

    import sslad
    from sslad.cli import cli

    det = sslad.load(run, "cpu").score(files)
    res = CliRunner().invoke(cli, ["export", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    scores, maps = sess.run(None, {"images": det.images.numpy()})
    want = det.maps.numpy()
    np.testing.assert_allclose(scores, det.scores, rtol=rtol, atol=rtol * max(1.0, float(np.abs(det.scores).max())))
    atol = rtol * max(1.0, float(np.abs(want).max())) if map_atol is None else map_atol
    np.testing.assert_allclose(maps, want, rtol=rtol, atol=atol)
