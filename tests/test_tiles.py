"""Feature: tiled scoring (``--tile``): every pixel is covered, overlaps blend without seams, an image's embedding
score is its worst tile's, and a tiled run scores, evaluates and exports like any run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers import assert_onnx_export_matches
from sslad.cli import cli
from sslad.config import ScoreConfig
from sslad.models.embed import infer_images
from sslad.models.tiles import (
    crop_windows,
    extract_tiles,
    map_passes,
    network_passes,
    resize_images,
    stitch,
    tile_count,
    tile_grid,
    tile_offsets,
)
from sslad.scoring import Scorer


def test_tiles_cover_every_pixel_with_half_a_tile_of_overlap():
    for size in range(32, 301, 7):
        for tile in range(4, size + 1, 5):
            offs = tile_offsets(size, tile)
            assert offs[0] == 0 and offs[-1] == size - tile  # flush with both edges
            assert all(0 < b - a <= tile / 2 for a, b in zip(offs, offs[1:], strict=False))  # >= half a tile overlap
            covered = np.zeros(size, bool)
            for o in offs:
                covered[o:o + tile] = True
            assert covered.all(), (size, tile)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.75])
def test_tiles_cover_every_pixel_with_the_overlap_asked_for(overlap):
    for size in range(32, 301, 11):
        for tile in range(4, size + 1, 7):
            offs = tile_offsets(size, tile, overlap)
            assert offs[0] == 0 and offs[-1] == size - tile
            assert all(0 < b - a <= tile - overlap * tile for a, b in zip(offs, offs[1:], strict=False))
            covered = np.zeros(size, bool)
            for o in offs:
                covered[o:o + tile] = True
            assert covered.all(), (size, tile, overlap)


def test_less_overlap_fewer_passes_on_a_large_image():
    """640-px images in 128-px tiles: 9 x 9 at the default half tile, 7 x 7 at a quarter, 5 x 5 edge to edge."""
    assert [tile_count(640, 128, o) for o in (0.5, 0.25, 0.0)] == [81, 49, 25]
    assert tile_offsets(640, 128, 0.0) == [0, 128, 256, 384, 512]  # no pixel seen twice
    assert tile_offsets(256, 128) == tile_offsets(256, 128, 0.5) == [0, 64, 128]  # the default: half a tile
    with pytest.raises(ValueError, match="overlap"):
        tile_offsets(256, 128, 1.0)


@pytest.mark.parametrize("size,tile,low,overlap", [(100, 32, 32, 0.5), (96, 40, 10, 0.5), (64, 64, 16, 0.5),
                                                   (257, 128, 64, 0.5), (257, 128, 64, 0.0), (100, 32, 8, 0.25)])
def test_a_constant_map_stays_constant_and_every_pixel_gets_a_score(size, tile, low, overlap):
    n = len(tile_grid(size, tile, overlap))
    out = stitch(torch.full((2 * n, 1, low, low), 0.37), size, tile, overlap)
    assert out.shape == (2, 1, size, size)
    torch.testing.assert_close(out, torch.full_like(out, 0.37))


@pytest.mark.parametrize("overlap", [0.5, 0.25, 0.0])
def test_stitching_the_tiles_of_a_map_gives_the_map_back_no_seams(overlap):
    g = torch.Generator().manual_seed(0)
    m = torch.rand(3, 1, 90, 90, generator=g)
    torch.testing.assert_close(stitch(extract_tiles(m, 36, overlap), 90, 36, overlap), m)


def test_channels_stitch_independently():
    """Several maps per tile (``--map both`` stitches the head's and the density's together) stitch as each alone."""
    torch.manual_seed(0)
    maps = torch.rand(2 * len(tile_grid(90, 36)), 2, 9, 9)
    both = stitch(maps, 90, 36)
    assert both.shape == (2, 2, 90, 90)
    for c in range(2):
        torch.testing.assert_close(both[:, c:c + 1], stitch(maps[:, c:c + 1], 90, 36))


def test_overlaps_blend_towards_the_tile_centre():
    """Where two tiles disagree, the stitched value moves smoothly from one to the other (no jump)."""
    size, tile = 64, 32
    grid = tile_grid(size, tile)
    maps = torch.stack([torch.full((1, tile, tile), float(x > 0)) for _, x in grid])  # right tiles 1, left 0
    row = stitch(maps, size, tile)[0, 0, 5].numpy()
    assert row[0] == 0 and row[-1] == 1
    assert np.all(np.diff(row) >= -1e-6) and np.abs(np.diff(row)).max() < 0.2  # monotone, small steps


def test_the_image_embedding_score_is_its_worst_tile():
    g = torch.Generator().manual_seed(0)
    fit = torch.randn(40, 4, 8, generator=g)  # 40 images x 4 tiles; feature 0 always near +5
    fit[..., 0] = 5 + 0.1 * fit[..., 0]
    sc = Scorer(ScoreConfig(image_score="embedding", tile=16)).fit(fit, None, 32)
    test = torch.randn(6, 4, 8, generator=g)
    test[..., 0] = 5 + 0.1 * test[..., 0]
    test[3, 2, 0] = -5.0  # one tile of one image unlike every tile seen
    scores, _ = sc.score(test, None, 32)
    per_tile = sc.density.score(test.flatten(0, 1)).reshape(6, 4)
    np.testing.assert_allclose(scores, per_tile.amax(1).double().numpy())
    assert int(np.argmax(scores)) == 3
    assert Scorer.from_state(sc.state_dict()).tile == 16


@pytest.fixture(scope="module")
def tiled_run(tiles, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiled") / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "40", "--crop", "32",
                                   "--tile", "32", "--epochs", "1", "--batch-size", "12", "--device", "cpu",
                                   "--seed", "2"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_a_tiled_run_scores_whole_images_from_tile_embeddings(tiled_run, tiles):
    import sslad

    metrics = json.loads((tiled_run / "metrics.json").read_text())
    assert metrics["tile"] == 32 and metrics["crop"] == 32
    det = sslad.load(tiled_run, "cpu")
    assert det.scorer.tile == 32
    res = det.score(sorted((tiles / "test" / "blob").glob("*.png")))
    assert res.maps.shape == (len(res.paths), 40, 40) and np.isfinite(res.scores).all()
    # the scores are the worst tile's density score, recomputed by hand from the tiles
    with torch.no_grad():
        pooled, _, patches = det.model.dense_outputs(extract_tiles(res.images.float(), 32))
    emb = det.scorer.embed_fn(pooled, patches)  # the default embedding: pooled + the descriptors' peak
    want = det.scorer.density.score(emb).reshape(len(res.images), -1).amax(1).double().numpy()
    if det.scorer.image_score == "embedding":
        np.testing.assert_allclose(res.scores, want, rtol=1e-5)


def test_a_tiled_run_exports_with_the_same_scores_and_maps(tiled_run, tiles, tmp_path):
    assert_onnx_export_matches(tiled_run, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "m.onnx")


def test_a_run_tiled_edge_to_edge_scores_and_exports_with_its_fewer_tiles(tiles, tmp_path):
    """``--tile-overlap 0``: 56-px images in 32-px tiles take 2 x 2 passes instead of 3 x 3; the scorer keeps the
    overlap, scores are the worst of those four tiles', the exported graph tiles the same way."""
    import sslad

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "56", "--crop", "32",
                                   "--tile", "32", "--tile-overlap", "0", "--epochs", "1", "--batch-size", "12",
                                   "--device", "cpu", "--seed", "2", "--image-score", "embedding"],
                           catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "(4 network passes per image)" in res.output
    assert json.loads((out / "metrics.json").read_text())["tile_overlap"] == 0
    det = sslad.load(out, "cpu")
    assert det.scorer.tile_overlap == 0
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    got = det.score(files)
    with torch.no_grad():
        pooled, _, patches = det.model.dense_outputs(extract_tiles(got.images.float(), 32, 0.0))
    assert len(pooled) == 4 * len(files)
    want = det.scorer.density.score(det.scorer.embed_fn(pooled, patches)).reshape(len(files), 4).amax(1)
    np.testing.assert_allclose(got.scores, want.double().numpy(), rtol=1e-5)
    assert_onnx_export_matches(out, files, tmp_path / "m.onnx")


@pytest.mark.parametrize("overlap", [0.5, 0.0])
def test_windows_cut_from_a_whole_map_are_the_tiles_of_it(overlap):
    """At the image's own grid a window is its tile; at a coarser grid (stride 8, offsets on it) the window of the
    pooled image is the pooled tile."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 96, 96, generator=g)
    torch.testing.assert_close(crop_windows(images, 96, 32, overlap), extract_tiles(images, 32, overlap))
    pool = torch.nn.functional.avg_pool2d
    torch.testing.assert_close(crop_windows(pool(images, 8), 96, 32, overlap),
                               pool(extract_tiles(images, 32, overlap), 8))


def test_one_pass_tiles_pool_each_window_of_the_whole_image():
    """``--tile-pass once``: one network pass over the whole image; each tile's embedding is layer4 averaged over
    its window, its peak the maximum of the window's patch descriptors; the map is the whole image's."""
    from sslad.models import NetConfig, PretextNet
    from sslad.models.embed import forward_windows
    from sslad.scoring.scorer import peak_embedding

    model = PretextNet(NetConfig()).eval()
    x = torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        emb, probs = forward_windows(model, x, 64, 0.5, embed_fn=peak_embedding)
        _, seg, levels = model.dense_outputs(x)
    assert emb.shape == (2, 9, 512 + 384) and probs.shape == seg.shape  # 3 x 3 windows; the map unstitched
    l4, desc = levels.maps[-1], levels.descriptors((2, 3))  # 4 x 4 and 16 x 16 cells
    for t, (y, x0) in enumerate(tile_grid(128, 64, 0.5)):
        pooled = l4[:, :, y // 32:y // 32 + 2, x0 // 32:x0 // 32 + 2].mean((2, 3))
        peak = desc[:, :, y // 8:y // 8 + 8, x0 // 8:x0 // 8 + 8].amax((2, 3))
        want = torch.cat([torch.nn.functional.normalize(pooled, dim=1),
                          torch.nn.functional.normalize(peak, dim=1)], 1) / 2 ** 0.5
        torch.testing.assert_close(emb[:, t], want)


def test_maps_once_is_each_tiles_embeddings_with_the_one_pass_maps():
    """``--tile-pass maps-once``: the tiles' embeddings exactly those of a pass per tile, the maps (and the trunk
    maps a patch density samples) exactly those of one pass over the whole image."""
    from sslad.models import NetConfig, PretextNet
    from sslad.models.embed import forward_scored
    from sslad.scoring.scorer import peak_embedding

    model = PretextNet(NetConfig()).eval()
    x = torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8).float()

    def map_fn(probs, levels):  # a map of the trunk's maps and the head's, as a patch density's
        return levels.descriptors((2, 3)).norm(dim=1, keepdim=True) + probs.mean()

    sunk = {p: [] for p in ("once", "maps-once")}
    decoded = []  # the per-pixel head's calls: none where no map is asked for
    model.seg.register_forward_hook(lambda *_: decoded.append(1))
    with torch.no_grad():
        each = forward_scored(model, x, 64, 0.5, "each", map_fn, peak_embedding)
        once = forward_scored(model, x, 64, 0.5, "once", map_fn, peak_embedding, sunk["once"].append)
        both = forward_scored(model, x, 64, 0.5, "maps-once", map_fn, peak_embedding, sunk["maps-once"].append)
        decoded.clear()
        alone = forward_scored(model, x, 64, 0.5, "maps-once", map_fn, peak_embedding, maps=False)
        for tile_pass in ("each", "once"):
            torch.testing.assert_close(forward_scored(model, x, 64, 0.5, tile_pass, map_fn, peak_embedding,
                                                      maps=False)[0], (each if tile_pass == "each" else once)[0])
    assert not decoded
    assert both[0].shape == (2, 9, 512 + 384) and both[1].shape == once[1].shape != each[1].shape
    torch.testing.assert_close(both[0], each[0])
    torch.testing.assert_close(both[1], once[1])
    torch.testing.assert_close(alone[0], each[0])
    assert alone[1] is None
    assert len(sunk["maps-once"]) == 1  # the whole images' trunk maps, handed over once
    torch.testing.assert_close(sunk["maps-once"][0].descriptors((2, 3)), sunk["once"][0].descriptors((2, 3)))
    assert network_passes(128, 64, 0.5, "maps-once") == 10 and map_passes(128, 64, 0.5, "maps-once") == 1


def test_maps_once_runs_no_tile_pass_where_no_embedding_is_wanted():
    """A patch density's sample (:func:`sample_patches`) and ``--map-layers auto``'s maps of the held-out and
    synthetic images use no embedding: with ``maps-once`` they come from its whole-image pass alone (no 64-px tile
    pass), the same sample and maps to the bit as when its tile passes run beside it."""
    from sslad.models import NetConfig, PretextNet
    from sslad.models.embed import PatchSampler, infer_images, sample_patches

    model = PretextNet(NetConfig()).eval()
    sides = []  # the side of every batch the trunk sees
    model.trunk.conv1.register_forward_pre_hook(lambda _, args: sides.append(int(args[0].shape[-1])))
    images = torch.randint(0, 255, (3, 3, 128, 128), dtype=torch.uint8)

    def map_fn(probs, levels):
        return levels.descriptors((2, 3)).norm(dim=1, keepdim=True) + probs.mean()

    kw = dict(tile=64, map_fn=map_fn, tile_pass="maps-once", batch_size=8)
    full = infer_images(model, images, **kw)
    beside = PatchSampler(len(images), 300)  # the sample drawn while the tile passes run (0.9.3's way)
    infer_images(model, images, tile=64, maps=False, patch_sink=beside, tile_pass="maps-once", batch_size=8)
    assert 64 in sides
    sides.clear()
    maps_only = infer_images(model, images, **kw, embed=False)
    sample = sample_patches(model, images, total=300, batch_size=8, tile=64, tile_pass="maps-once")
    assert sides and set(sides) == {128}  # the whole images' passes only
    assert maps_only.embeddings.shape == (3, 0) and full.embeddings.shape == (3, 9, 512)
    torch.testing.assert_close(maps_only.maps, full.maps, rtol=0, atol=0)
    torch.testing.assert_close(sample, sample_patches(model, images, total=300, batch_size=8, tile=64,
                                                      tile_pass="once"), rtol=0, atol=0)
    torch.testing.assert_close(sample, beside.samples(), rtol=0, atol=0)
    each = dict(kw, tile_pass="each")
    torch.testing.assert_close(infer_images(model, images, **each, embed=False).maps,
                               infer_images(model, images, **each).maps, rtol=0, atol=0)


@pytest.mark.parametrize("tile_pass,passes,flags", [("once", "1 network pass", []),
                                                    ("maps-once", "10 network passes", ["--map-layers", "auto"])])
def test_a_run_scored_with_a_whole_image_pass_scores_and_exports_the_same(tiles, tmp_path, tile_pass, passes, flags):
    import sslad

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "64", "--crop", "32",
                                   "--tile", "32", "--tile-pass", tile_pass, "--epochs", "1", "--batch-size", "12",
                                   "--device", "cpu", "--seed", "2", *flags], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"({passes} per image)" in res.output  # 3 x 3 tiles of 32 px at 64 px
    if flags:  # the layers chosen on maps of synthetic held-out anomalies (their maps from the whole pass alone)
        assert set(json.loads((out / "metrics.json").read_text())["map_layers_synthetic_auroc"]) == {"2,3", "3,4",
                                                                                                    "2,3,4"}
    det = sslad.load(out, "cpu")
    assert det.scorer.tile_pass == tile_pass
    assert json.loads((out / "metrics.json").read_text())["tile_pass"] == tile_pass
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    got = det.score(files)
    assert got.maps.shape == (len(files), 64, 64) and np.isfinite(got.scores).all()
    assert_onnx_export_matches(out, files, tmp_path / "m.onnx")


def test_a_scorer_saved_before_the_overlap_was_a_choice_tiles_at_half_a_tile():
    fit = torch.randn(40, 4, 8, generator=torch.Generator().manual_seed(0))
    state = Scorer(ScoreConfig(image_score="embedding", tile=16, tile_overlap=0.25)).fit(fit, None, 32).state_dict()
    assert Scorer.from_state(state).tile_overlap == 0.25
    del state["tile_overlap"], state["tile_pass"]
    old = Scorer.from_state(state)
    assert old.tile_overlap == 0.5 and old.tile_pass == "each"


def test_an_overlap_out_of_range_is_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "40",
                                   "--tile", "32", "--tile-overlap", "0.9", "--epochs", "0"])
    assert res.exit_code != 0 and "--tile-overlap must lie in [0, 0.75]" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r").exists()


def test_a_tile_larger_than_the_image_is_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "40",
                                   "--tile", "64", "--epochs", "0"])
    assert res.exit_code != 0 and "--tile must be 0" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_tiles_and_the_patch_density_make_maps_together(tiled_run, tiles):
    """A tiled run re-fitted with --map density: each tile's density map, stitched; the exported module agrees."""
    from sslad.backends import make_renderer
    from sslad.checkpoint import load_checkpoint
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train
    from sslad.detector import Detector
    from sslad.training import fit_scorer

    model, _, ckpt = load_checkpoint(tiled_run)
    cfg = RunConfig.from_dict(ckpt["config"]).override(score={"map": "density"})
    data = load_dataset(str(tiles), None, 40)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    scorer = fit_scorer(model, fit, holdout, cfg, make_renderer("torch", 40, torch.device("cpu")))
    assert scorer.tile == 32 and scorer.map_source == "density"
    det = Detector(model, scorer, 40)
    res = det.score(data.test.images.numpy())
    assert res.maps.shape == (len(data.test), 40, 40) and torch.isfinite(res.maps).all()
    with torch.no_grad():
        scores, maps = det.as_module()(data.test.images)
    np.testing.assert_allclose(scores.numpy(), res.scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps, res.maps)


def test_sampling_patches_of_tiles_keeps_the_forward_batch_as_small_as_whole_images():
    """Cutting each image into tiles multiplies a batch: at 96 px in 32-px tiles (25 tiles an image) a batch of 8
    images would be 200 tiles a forward pass (at 384 of 128 px and the default 64 images: 1,600, which ran a
    2-core machine's 24 GiB out of memory). The patch sampler runs about as many pixels per pass as whole images,
    and still draws from every tile."""
    from sslad.models import NetConfig, PretextNet
    from sslad.models.embed import sample_patches

    model = PretextNet(NetConfig(seg_head=False)).eval()
    sizes, forward = [], model.dense_outputs

    def counting(x, **kw):
        sizes.append(len(x))
        return forward(x, **kw)

    model.dense_outputs = counting
    images = torch.randint(0, 255, (6, 3, 96, 96), dtype=torch.uint8)
    tiles_per_image = len(tile_offsets(96, 32)) ** 2
    out = sample_patches(model, images, total=600, batch_size=8, tile=32)
    assert max(sizes) == tiles_per_image  # one image's tiles a pass (8 x 32^2 / 96^2 rounds down to 1 image)
    assert sum(sizes) == 6 * tiles_per_image and out.shape == (6 * tiles_per_image * 4, 384)
    # several stage sets in one pass (--map-layers auto): each the sample that set alone draws
    sizes.clear()
    both = sample_patches(model, images, total=600, batch_size=8, tile=32, stages=[(2, 3), (3, 4)])
    assert sum(sizes) == 6 * tiles_per_image and torch.equal(both[0], out)
    torch.testing.assert_close(both[1], sample_patches(model, images, total=600, batch_size=8, tile=32,
                                                       stages=(3, 4)), rtol=0, atol=0)
    assert both[1].shape[1] == 256 + 512


def test_a_whole_view_joins_its_density_on_held_out_statistics():
    """An anomaly the tiles cannot see (every tile ordinary) but the whole view can: the joined score ranks it
    first; the score is the sum of the views' log scores standardised on the held-out set, and survives a reload."""
    g = torch.Generator().manual_seed(1)

    def views(n: int) -> tuple[torch.Tensor, torch.Tensor]:  # (n, 4 tiles, 6) and (n, 5); feature 0 near +5
        t, w = torch.randn(n, 4, 6, generator=g), torch.randn(n, 5, generator=g)
        t[..., 0], w[:, 0] = 5 + 0.1 * t[..., 0], 5 + 0.1 * w[:, 0]
        return t, w

    (fit, fit_whole), (hold, hold_whole), (test, test_whole) = views(60), views(20), views(8)
    sc = Scorer(ScoreConfig(image_score="embedding", tile=16, whole_view=16)).fit(
        fit, None, 32, holdout=(hold, None, hold_whole), whole=fit_whole)
    test[5], test_whole[5, 0] = fit.mean((0, 1)), -5.0  # every tile ordinary; the whole view unlike any seen
    scores, _ = sc.score(test, None, 32, whole=test_whole)
    assert int(np.argmax(scores)) == 5
    tiles_only = Scorer(ScoreConfig(image_score="embedding", tile=16)).fit(fit, None, 32, holdout=(hold, None))
    assert int(np.argmin(tiles_only.score(test, None, 32)[0])) == 5  # the tiles alone: the most ordinary

    def z(view: torch.Tensor, cal: torch.Tensor) -> np.ndarray:  # standardised log score, floored at -3
        return ((view.log() - cal.log().mean()) / cal.log().std(unbiased=False)).clamp_min(-3.0).numpy()

    per_tile = sc.density.score(test.flatten(0, 1)).reshape(8, 4).amax(1).double()
    hold_tile = sc.density.score(hold.flatten(0, 1)).reshape(20, 4).amax(1).double()
    whole_view = lambda e: sc.whole_density.score(e).double()  # noqa: E731
    want = z(per_tile, hold_tile) + z(whole_view(test_whole), whole_view(hold_whole))
    np.testing.assert_allclose(scores, want, rtol=1e-9)
    again = Scorer.from_state(sc.state_dict())
    assert again.whole_view == 16 and again.is_finite()
    np.testing.assert_allclose(again.score(test, None, 32, whole=test_whole)[0], scores)
    with pytest.raises(ValueError, match="whole view"):
        sc.score(test, None, 32)


def test_a_run_with_a_whole_view_scores_and_exports_both_views(tiles, tmp_path):
    import sslad

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "40", "--tile", "32",
                                   "--whole-view", "32", "--epochs", "0", "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    det = sslad.load(out, "cpu")
    assert det.scorer.whole_view == 32 and len(det.scorer.view_stats) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["whole_view"] == 32 and {"embedding", "view:main", "view:whole"} <= set(metrics["synthetic_auroc"])
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    got = det.score(files)
    # the scores are the tiles' and the 32-px whole images' embeddings joined, recomputed by hand; another
    # image's whole view gives other scores
    assert det.scorer.image_score == "embedding"
    whole = infer_images(det.model, resize_images(got.images, 32), embed_fn=det.scorer.embed_fn).embeddings
    tiled = infer_images(det.model, got.images, tile=32, embed_fn=det.scorer.embed_fn, maps=False).embeddings
    np.testing.assert_allclose(det.scorer.score(tiled, None, 40, whole=whole)[0], got.scores, rtol=1e-9)
    assert not np.allclose(det.scorer.score(tiled, None, 40, whole=whole.flip(0))[0], got.scores)
    assert_onnx_export_matches(out, files, tmp_path / "m.onnx")
    res = CliRunner().invoke(cli, ["export", str(out), "--format", "torchscript"])  # traced tiles: one fixed grid
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        ts_scores, ts_maps = torch.jit.load(str(out / "model.torchscript.pt"))(got.images)
    np.testing.assert_allclose(ts_scores.numpy(), got.scores, rtol=1e-4, atol=1e-4 * np.abs(got.scores).max())
    np.testing.assert_allclose(ts_maps.numpy(), got.maps.numpy(), rtol=1e-4, atol=1e-4)


def test_a_whole_view_larger_than_the_image_is_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "40",
                                   "--whole-view", "64", "--epochs", "0"])
    assert res.exit_code != 0 and "--whole-view must be 0" in res.output and "Traceback" not in res.output


def test_the_scoring_log_line_counts_the_tiles_and_the_whole_view():
    from sslad.config import RunConfig
    from sslad.training import scoring_line

    tiled = RunConfig().override(data={"image_size": 256}, score={"tile": 128, "whole_view": 128})
    assert scoring_line(tiled, 684, 77) == ("fitting the scorer on 684 good images, thresholds from 77 held-out ones "
                                            "(10 network passes per image)")  # 3 x 3 tiles at stride 64, + 1
    edge = tiled.override(score={"tile_overlap": 0.0})
    assert scoring_line(edge, 684, 77).endswith("(5 network passes per image)")  # 2 x 2 tiles, + 1
    assert scoring_line(RunConfig(), 5, 1) == "fitting the scorer on 5 good images (1 network pass per image)"
