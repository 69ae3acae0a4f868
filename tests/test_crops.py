"""Feature: patch-level training crops keep each synthetic anomaly in view, reproducibly; a cropped run scores
whole images."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from sslad.cli import cli
from sslad.synth.crops import crop_offsets, take_crops


def _masks(n=40, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, s, s, dtype=torch.uint8)
    for i in range(1, n):  # row 0 stays empty (a good sample)
        h, w = (int(v) for v in torch.randint(2, 20 if i % 2 else 50, (2,), generator=g))
        y, x = (int(v) for v in torch.randint(0, s - max(h, w), (2,), generator=g))
        m[i, y:y + h, x:x + w] = 1
    return m


def test_crops_hold_the_whole_anomaly_where_it_fits_else_its_centre():
    masks = _masks()
    off = crop_offsets(masks, 24, torch.Generator().manual_seed(1))
    assert off.shape == (40, 2) and int(off.min()) >= 0 and int(off.max()) <= 64 - 24
    _, crops = take_crops(torch.zeros(40, 3, 64, 64), masks, off, 24)
    for i in range(1, 40):
        ys, xs = masks[i].nonzero(as_tuple=True)
        fits = int(ys.max() - ys.min()) < 24 and int(xs.max() - xs.min()) < 24
        if fits:
            assert int(crops[i].sum()) == int(masks[i].sum()), i  # every anomalous pixel in view
        else:
            assert crops[i].any(), i  # centred on it
    again = crop_offsets(masks, 24, torch.Generator().manual_seed(1))
    assert torch.equal(off, again)  # seeded: a resumed run takes the same windows


def test_take_crops_cuts_the_same_window_from_images_and_masks():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    m = torch.randint(0, 2, (3, 32, 32), dtype=torch.uint8, generator=g)
    off = torch.tensor([[0, 0], [5, 7], [16, 16]])
    xc, mc = take_crops(x, m, off, 16)
    for i, (y0, x0) in enumerate(off.tolist()):
        assert torch.equal(xc[i], x[i, :, y0:y0 + 16, x0:x0 + 16]) and torch.equal(mc[i], m[i, y0:y0 + 16, x0:x0 + 16])
    which = torch.tensor([2, 0])  # a batch cut straight from the set: the same windows as from its gathered rows
    xi, mi = take_crops(x, m, off[:2], 16, index=which)
    xg, mg = take_crops(x[which], m[which], off[:2], 16)
    assert xi.is_contiguous() and torch.equal(xi, xg) and torch.equal(mi, mg)
    assert torch.equal(xi[0], x[2, :, 0:16, 0:16]) and torch.equal(mi[1], m[0, 5:21, 7:23])


def test_a_cropped_run_trains_on_crops_and_scores_whole_images(tiles, tmp_path):
    out = tmp_path / "crop"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "48", "--crop", "32",
                                   "--epochs", "1", "--batch-size", "12", "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["crop"] == 32 and m["steps"] == 2 and m["pixel_auroc"] is not None
    import sslad

    det = sslad.load(out).score(sorted((tiles / "test" / "blob").glob("*.png")))
    assert det.maps.shape == (6, 48, 48)  # the whole image, fully convolutionally


@pytest.mark.parametrize("crop", ["16", "64"])
def test_crop_outside_its_range_is_one_line(tiles, tmp_path, crop):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "o"), "--image-size", "48", "--crop",
                                   crop])
    assert res.exit_code != 0 and "--crop must be 0" in res.output and "Traceback" not in res.output
