"""Feature: the DALI graph renders the same plans as the torch renderer (CPU operators in CI; GPU if present).

Tolerance (documented in the README): identical labels and regions; pixels differ by at most one
grey level from rounding, and the mean absolute difference is at most 1 grey level outside the
one-pixel band around the edges of rotated patches (in practice it is ~0.0001 everywhere).
On failure both renderings are saved under ``$SSLAD_TEST_ARTIFACTS`` (default: pytest's tmp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers import auroc_of_scores_csv, base_images, box_coords, render_images
from sslad.backends import make_renderer
from sslad.runtime import torch_threads
from sslad.synth import PretextClass, balanced_plan, reflect_pad, render

S = 48


def edge_band(plan, i: int) -> torch.Tensor:
    """Pixels within one pixel of a rotated box's border (where interpolation may differ)."""
    if plan.angle[i] == 0:
        return torch.zeros(S, S, dtype=torch.bool)
    _, _, h, w = plan.box[i].tolist()
    u, v = box_coords(plan, i, S)
    return ((u <= w / 2 + 1) & (v <= h / 2 + 1)) & ~((u <= w / 2 - 1) & (v <= h / 2 - 1))


def save_pair(name: str, a: torch.Tensor, b: torch.Tensor, tmp_path: Path) -> Path:
    from sslad.report import save_grid

    folder = Path(os.environ.get("SSLAD_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    save_grid(folder / f"{name}_torch.png", a.cpu())
    save_grid(folder / f"{name}_dali.png", b.cpu())
    return folder


def compare(plan, ref: torch.Tensor, got: torch.Tensor, name: str, tmp_path: Path) -> None:
    assert got.shape == ref.shape and got.dtype == torch.uint8
    diff = (got.cpu().int() - ref.cpu().int()).abs()
    try:
        assert int(diff.max()) <= 1, f"max pixel difference {int(diff.max())}"
        for i in range(len(plan)):
            keep = ~edge_band(plan, i)
            assert float(diff[i][:, keep].float().mean()) <= 1.0, f"sample {i}"
    except AssertionError:
        where = save_pair(name, ref, got, tmp_path)
        raise AssertionError(f"DALI and torch renderings differ; both saved in {where}") from None


def dali_renderer(device: torch.device):
    return make_renderer("dali", S, device, batch_size=16)


def render_both(plan, imgs: torch.Tensor, name: str, tmp_path: Path, device: str = "cpu"):
    """PLAN rendered by torch (on the CPU) and by DALI (on DEVICE): asserts the pixels agree (``compare``) and the
    masks are bit-equal; returns torch's images, DALI's and torch's masks, and DALI's masks."""
    padded = reflect_pad(imgs, plan.pad)
    ref, ref_masks = render(plan, padded.cpu())
    got, got_masks = dali_renderer(torch.device(device)).render(plan, padded)
    compare(plan, ref, got, name, tmp_path)
    assert torch.equal(got_masks.cpu(), ref_masks)  # the same plan gives the same masks
    return ref, got, ref_masks, got_masks


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_dali_cpu_matches_torch(dali, scar, tmp_path):
    imgs = base_images(5, S)
    plan = balanced_plan(len(imgs), 3, S, seed=21, scar=scar)
    ref, got, _, _ = render_both(plan, imgs, f"cpu_{scar}", tmp_path)
    # Same regions: pixels changed relative to the class-0 twin (same group) match.
    for i in (plan.label != PretextClass.GOOD).nonzero().flatten().tolist():
        t = i - int(plan.label[i])
        r = (ref[i] != ref[t]).any(0)
        d = ((got[i].int() - got[t].int()).abs() > 1).any(0)
        assert not (d & ~r).any(), f"DALI changed pixels outside the torch region in sample {i}"
        assert int(r.sum()) == 0 or int((r & ((got[i] != got[t]).any(0))).sum()) >= 0.9 * int(r.sum())


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_dali_cpu_matches_torch_on_irregular_rows(dali, scar, tmp_path):
    """Blend and alter blobs: the same pixels (<= 1 grey level) and bit-equal masks.

    Measured: max 1, mean ~1e-5 grey levels over all images; every irregular mask bit-equal (the
    grid upsample is one warp_affine vs one grid_sample, equal to float rounding).
    """
    imgs = base_images(5, S)
    for seed in (0, 1):
        plan = balanced_plan(len(imgs), 4, S, seed=seed, scar=scar, irregular=1.0, other_source=0.5)
        irr = plan.variant == 1
        assert bool((irr & (plan.label == PretextClass.CUTPASTE)).any())
        assert bool((plan.blend_index != plan.index).any())
        _, _, ref_masks, _ = render_both(plan, imgs, f"cpu_irregular_{scar}_{seed}", tmp_path)
        assert int(ref_masks[irr].flatten(1).amax(1).min()) == 1  # every blob marks something


@pytest.mark.parametrize("size, seed", [(S, 0), (S, 1), (256, 2)])
def test_dali_cpu_matches_torch_on_crack_rows(dali, size, seed, tmp_path):
    """Cracks among plain scars and blobs: the same pixels (<= 1 grey level) and bit-equal masks.

    Measured: every pixel equal on the crack rows (max 0), masks bit-equal (each segment is one
    warp_affine of a box of ones vs one grid_sample of the same box, as for the line scar); max 1
    grey level elsewhere (the blobs' rounding).
    """
    imgs = base_images(4, size)
    plan = balanced_plan(len(imgs), 3, size, seed=seed, irregular=0.5, cracks=1.0)
    crack = plan.cracks()
    assert bool(crack.any()) and bool((plan.variant[plan.label == PretextClass.SCAR] == 1).any())
    padded = reflect_pad(imgs, plan.pad)
    ref, ref_masks = render(plan, padded)
    got, got_masks = make_renderer("dali", size, torch.device("cpu"), batch_size=9).render(plan, padded)
    diff = (got.int() - ref.int()).abs()
    if int(diff.max()) > 1 or int(diff[crack].max()) > 1:
        where = save_pair(f"cpu_crack_{size}_{seed}", ref, got, tmp_path)
        raise AssertionError(f"DALI and torch cracks differ by {int(diff.max())}; both saved in {where}")
    assert float(diff.float().mean()) <= 1e-3
    assert torch.equal(got_masks, ref_masks)
    assert int(ref_masks[crack].flatten(1).amax(1).min()) == 1  # every crack marks something


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_dali_cpu_matches_torch_on_border_rows(dali, scar, tmp_path):
    """Every family moved to touch a side (blobs with their grid continued to the border): the same pixels
    (<= 1 grey level) and bit-equal masks."""
    imgs = base_images(4, S)
    plan = balanced_plan(len(imgs), 3, S, seed=6, scar=scar, irregular=0.5, cracks=0.5, border=1.0)
    assert set(plan.variant.tolist()) == {0, 1, 2}
    render_both(plan, imgs, f"cpu_border_{scar}", tmp_path)


@pytest.mark.parametrize("sizes", ["uniform", "log"])
def test_dali_cpu_matches_torch_on_large_blobs(dali, tmp_path, sizes):
    """--blob-area 1: boxes up to the whole image (blends from other images, alters, some at the border), their
    areas uniform or log-uniform: the same pixels (<= 1 grey level) and bit-equal masks."""
    imgs = base_images(4, S)
    plan = balanced_plan(len(imgs), 3, S, seed=9, irregular=1.0, blob_area=1.0, border=0.3, blob_sizes=sizes)
    blob = plan.variant == 1
    assert float((plan.box[blob, 2] * plan.box[blob, 3]).max()) > 0.5 * S * S
    render_both(plan, imgs, f"cpu_large_blobs_{sizes}", tmp_path)


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_dali_cpu_share_zero_keeps_the_plain_pixels(dali, scar):
    """irregular=0, cracks=0: the DALI graph renders the pixels it rendered before the variants existed.

    sha256 (16 hex digits) of images (NCHW) and masks, recorded before the change, for the plan of
    tests/test_render.py::test_share_zero_keeps_the_plain_plans_and_pixels.
    """
    import hashlib

    golden = {"patch": "a2b1262efc6390a2", "line": "9294edc37675d556"}
    imgs = base_images(6, S)
    plan = balanced_plan(len(imgs), 2, S, seed=31, scar=scar, irregular=0.0, cracks=0.0)
    out, masks = dali_renderer(torch.device("cpu")).render(plan, reflect_pad(imgs, plan.pad))
    h = hashlib.sha256(out.contiguous().numpy().tobytes() + masks.numpy().tobytes()).hexdigest()[:16]
    assert h == golden[scar]


def test_dali_cpu_is_deterministic_and_batch_independent(dali):
    imgs = base_images(5, S)
    plan = balanced_plan(len(imgs), 2, S, seed=5)
    padded = reflect_pad(imgs, plan.pad)
    a = make_renderer("dali", S, torch.device("cpu"), batch_size=7).render(plan, padded)[0]
    b = make_renderer("dali", S, torch.device("cpu"), batch_size=30).render(plan, padded)[0]
    assert torch.equal(a, b)


def test_dali_cpu_threads_render_the_same_bytes(dali, monkeypatch):
    """The CPU graph takes torch's thread count by default (a regeneration is a pause in training): more threads,
    the same images and masks, every family."""
    from sslad.dali_pipes import DaliRenderer

    imgs = base_images(8, S)
    plan = balanced_plan(len(imgs), 2, S, seed=9, irregular=0.5, other_source=0.5, cracks=0.5)
    padded = reflect_pad(imgs, plan.pad)
    monkeypatch.delenv("SSLAD_DALI_THREADS", raising=False)
    with torch_threads(3):
        default = DaliRenderer(S, "cpu", batch_size=12)
    assert default.pipe.num_threads == 3
    one = DaliRenderer(S, "cpu", batch_size=12, num_threads=1).render(plan, padded)
    for a, b in zip(one, default.render(plan, padded), strict=True):
        assert torch.equal(a, b)


def test_dali_preview_matches_torch_preview(dali, tiles, tmp_path):
    import json

    from click.testing import CliRunner

    from sslad.cli import cli

    outs = {}
    for backend in ("torch", "dali"):
        out = tmp_path / backend
        res = CliRunner().invoke(cli, ["preview", str(tiles), "--backend", backend, "--seed", "3", "--out", str(out),
                                       "--image-size", "32", "--device", "cpu", "--count", "12"])
        assert res.exit_code == 0, res.output
        outs[backend] = out
    assert (outs["torch"] / "plan.json").read_bytes() == (outs["dali"] / "plan.json").read_bytes()
    pt = json.loads((outs["torch"] / "plan.json").read_text())
    assert json.loads((outs["dali"] / "preview.json").read_text())["backend"] == "dali-cpu"
    import numpy as np
    from PIL import Image

    for s in pt["samples"]:
        a = np.asarray(Image.open(outs["torch"] / s["file"])).astype(int)
        b = np.asarray(Image.open(outs["dali"] / s["file"])).astype(int)
        assert np.abs(a - b).max() <= 1 and np.abs(a - b).mean() <= 1.0


def test_dali_training_runs_end_to_end(dali, tiles, tmp_path):
    import json

    from click.testing import CliRunner

    from sslad.cli import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--backend", "dali", "--out", str(out), "--image-size", "32",
                                   "--epochs", "1", "--batch-size", "12", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["backend"] == "dali-cpu"
    assert m["image_auroc"] == pytest.approx(auroc_of_scores_csv(out / "scores.csv"), abs=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("scar", ["patch", "line"])
@pytest.mark.parametrize("irregular, cracks", [(0.5, 0.25), (1.0, 0.25), (0.5, 1.0)])
def test_dali_gpu_matches_torch(dali, scar, irregular, cracks, tmp_path):
    imgs = base_images(5, S).cuda()
    plan = balanced_plan(len(imgs), 3, S, seed=21, scar=scar, irregular=irregular, cracks=cracks)
    _, got, _, got_masks = render_both(plan, imgs, f"gpu_{scar}_{irregular}_{cracks}", tmp_path, "cuda")
    assert got.is_cuda and got_masks.is_cuda  # stays on the device: no host round trip


@pytest.mark.gpu
def test_torch_cuda_matches_torch_cpu(tmp_path):
    imgs = base_images(5, S)
    plan = balanced_plan(len(imgs), 3, S, seed=8)
    ref = render_images(plan, reflect_pad(imgs, plan.pad))
    got = render_images(plan, reflect_pad(imgs.cuda(), plan.pad))
    assert got.is_cuda
    compare(plan, ref, got, "torch_cuda", tmp_path)


class _CanvasStrideRenderer:
    """A renderer with the fault the first H200 run found in DALI 2.4's GPU multi_paste: each pasted h x w
    piece read with the canvas's row stride (row r of the piece taken from the piece buffer at r * S)."""

    name = "canvas-stride"

    def __init__(self, inner):
        self.inner = inner

    def render(self, plan, padded, into=None):
        out, masks = self.inner.render(plan, padded, into)
        out = out.clone()
        for i in range(len(plan)):
            rows = torch.nonzero(masks[i].any(1)).flatten()
            cols = torch.nonzero(masks[i].any(0)).flatten()
            if len(rows) < 2:
                continue
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            piece = out[i, :, y0:y1, x0:x1].permute(1, 2, 0).reshape(-1)  # HWC buffer of the pasted piece
            h, w, s = y1 - y0, x1 - x0, out.shape[-1]
            for r in range(1, h):
                seg = piece[r * s * 3:(r * s + w) * 3]
                if len(seg) == w * 3:
                    out[i, :, y0 + r, x0:x1] = seg.reshape(w, 3).t()
                else:  # past the piece's buffer: whatever memory lies there
                    out[i, :, y0 + r, x0:x1] = 255 - out[i, :, y0 + r, x0:x1]
        return out, masks


def test_check_renderer_passes_dali_cpu_and_rejects_the_canvas_stride_fault(dali):
    from sslad.backends import check_renderer
    from sslad.errors import SsladError

    good = dali_renderer(torch.device("cpu"))
    check_renderer(good, S, "cpu")  # the CPU operators draw the plan as torch does
    with pytest.raises(SsladError, match="canvas-stride renderer draws the pretext plan differently"):
        check_renderer(_CanvasStrideRenderer(good), S, "cpu")
