"""Feature: anomaly maps from a patch density (``--map density``) over the trunk's layer2-3 patch descriptors,
fitted on the good images' locations: one Gaussian (``--patch-density gauss``, the default) or a coreset memory
and the nearest entry's distance (``knn``); maps without a per-pixel head, exported like any run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sslad
from helpers import assert_onnx_export_matches
from sslad.cli import cli
from sslad.config import ScoreConfig
from sslad.scoring import PatchGaussian, PatchKNN, Scorer
from sslad.scoring.density import greedy_coreset


def test_the_patch_density_scores_an_unseen_descriptor_highest():
    g = torch.Generator().manual_seed(0)
    good = torch.randn(2000, 6, generator=g) * torch.tensor([1.0, 1.0, 0.05, 1.0, 1.0, 1.0])  # feature 2 ~ constant
    pg = PatchGaussian().fit(good)
    feats = torch.randn(3, 6, 5, 5, generator=g) * torch.tensor([1.0, 1.0, 0.05, 1.0, 1.0, 1.0])[None, :, None, None]
    feats[1, 2, 3, 4] = 1.0  # one location of one image off the good manifold (20 standard deviations)
    maps = pg.maps(feats)
    assert maps.shape == (3, 1, 5, 5)
    assert int(maps.flatten().argmax()) == 25 + 3 * 5 + 4
    again = PatchGaussian().load_state_dict(pg.state_dict())
    torch.testing.assert_close(again.maps(feats), maps)


def test_the_coreset_keeps_the_rare_descriptors_a_random_sample_misses():
    """1,000 descriptors in one tight cluster and 5 far apart from it and each other: a coreset of 10 holds all
    5 rare ones (greedy k-centre covers the space; a random 10 of 1,005 would hold one of them 5 % of the time)."""
    g = torch.Generator().manual_seed(0)
    common = torch.randn(1000, 16, generator=g) * 0.1
    rare = torch.eye(16)[:5] * 10.0
    x = torch.cat([common, rare])
    idx = greedy_coreset(x, 10, dim=8)
    assert len(set(idx.tolist())) == 10
    assert set(range(1000, 1005)) <= set(idx.tolist())
    torch.testing.assert_close(greedy_coreset(x, 2000), torch.arange(1005))  # asked for more: all of them


def test_the_patch_memory_is_zero_on_good_descriptors_and_highest_on_an_unseen_one():
    g = torch.Generator().manual_seed(0)
    good = torch.randn(50, 6, generator=g)
    knn = PatchKNN(bank=100).fit(good)  # a memory larger than the descriptors keeps them all
    feats = good[:45].T.reshape(1, 6, 5, 9).repeat(2, 1, 1, 1)
    feats[1, :, 3, 4] = 5.0  # one location far from every good descriptor
    maps = knn.maps(feats)
    assert maps.shape == (2, 1, 5, 9)
    assert float(maps[0].max()) < 0.01  # every location of image 0 is in the memory (float rounding aside)
    assert int(maps.flatten().argmax()) == 45 + 3 * 9 + 4
    # chunked over locations: the same numbers, up to the rounding of a distance near zero (sqrt of ~1e-6: ~1e-3;
    # the matrix products' blocking differs between CPUs, seen on AMD EPYC)
    torch.testing.assert_close(knn.maps(feats, chunk=7), maps, atol=0.01, rtol=1e-5)
    again = PatchKNN().load_state_dict(knn.state_dict())
    torch.testing.assert_close(again.maps(feats), maps)
    assert PatchKNN(bank=8).fit(good).bank.shape == (8, 6)


@pytest.mark.parametrize(("kind", "cls"), [("knn", PatchKNN), ("gauss", PatchGaussian)])
def test_the_scorer_fits_and_restores_the_configured_patch_density(kind, cls):
    scorer = Scorer(ScoreConfig(patch_density=kind, patch_bank=30)).fit_patches(torch.randn(200, 4))
    scorer.density.fit(torch.randn(20, 5))
    assert isinstance(scorer.patches, cls)
    again = Scorer.from_state(scorer.state_dict())
    assert isinstance(again.patches, cls) and again.patch_density == kind
    feats = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(again.patches.maps(feats), scorer.patches.maps(feats))


def test_a_checkpointed_gaussian_without_a_type_still_loads():
    """Scorers written before the memory existed hold the Gaussian's state with its type; one without a type is
    read as the Gaussian too."""
    scorer = Scorer(ScoreConfig(patch_density="gauss")).fit_patches(torch.randn(100, 3))
    scorer.density.fit(torch.randn(20, 5))
    state = scorer.state_dict()
    state["patches"].pop("type")
    assert isinstance(Scorer.from_state(state).patches, PatchGaussian)


def test_an_unknown_patch_density_is_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--config",
                                   str(_yaml(tmp_path, "score:\n  patch_density: magic\n")), "--epochs", "0"])
    assert res.exit_code != 0 and "unknown patch density 'magic'" in res.output and "Traceback" not in res.output


@pytest.fixture(scope="module")
def density_run(tiles, tmp_path_factory):
    """A tiny run without a per-pixel head whose maps come from the patch memory (64 px: an 8 x 8 grid of
    layer2 locations; the Gaussian's maps are the default ``--map both`` runs' everywhere else)."""
    out = tmp_path_factory.mktemp("density") / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "64", "--epochs", "2",
                                   "--batch-size", "12", "--device", "cpu", "--seed", "1", "--seg-weight", "0",
                                   "--map", "density", "--patch-density", "knn", "--patch-bank", "100"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_a_density_run_has_maps_without_a_per_pixel_head(density_run, tiles, tmp_path):
    m = json.loads((density_run / "metrics.json").read_text())
    assert m["map"] == "density" and m["pixel_auroc"] is not None and "map" in m["synthetic_auroc"]
    det = sslad.load(density_run, "cpu")
    assert not det.model.cfg.seg_head and det.has_maps and det.scorer.map_source == "density"
    assert isinstance(det.scorer.patches, PatchKNN) and len(det.scorer.patches.bank) == 100
    res = CliRunner().invoke(cli, ["predict", str(density_run), str(tiles / "test" / "blob"),
                                   "--out", str(tmp_path / "p.csv"), "--maps"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "maps").glob("*.png"))) == 6


def test_the_density_map_is_higher_inside_a_planted_defect(density_run, tiles):
    """The dark disc of the test images is unlike any location of the good stripes: the map is higher inside
    it than outside on every defective image."""
    from sslad.data.io import read_mask

    files = sorted((tiles / "test" / "blob").glob("*.png"))
    det = sslad.load(density_run, "cpu").score(files)
    higher = []
    for f, mp in zip(files, det.maps, strict=True):
        mask = torch.from_numpy(read_mask(tiles / "ground_truth" / "blob" / f"{f.stem}_mask.png", 64)).bool()
        higher.append(float(mp[mask].mean()) > float(mp[~mask].mean()))
    assert sum(higher) >= 5, higher


def test_a_density_run_exports_with_the_same_scores_and_maps(density_run, tiles, tmp_path):
    assert_onnx_export_matches(density_run, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "d.onnx")


def test_an_unknown_map_source_is_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--config",
                                   str(_yaml(tmp_path, "score:\n  map: magic\n")), "--epochs", "0"])
    assert res.exit_code != 0 and "unknown map source 'magic'" in res.output and "Traceback" not in res.output


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("layers", "weight"), [("2,3", 0.5), ("3,4", 0.25)])
def test_map_both_averages_the_two_maps_on_their_held_out_scales(tiny_run, tiles, layers, weight):
    """``--map both`` on a finished run: the map is the mean of the head's and the density's maps (the head's
    share ``--map-weight``), each scaled by (median, 99 % of maxima) of its own held-out maps; the density's
    descriptors are those of the trunk stages ``--map-layers`` names; the exported module gives the same numbers."""
    from sslad.backends import make_renderer
    from sslad.checkpoint import load_checkpoint
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train
    from sslad.detector import Detector
    from sslad.models import infer_images
    from sslad.training import fit_scorer

    model, _, ckpt = load_checkpoint(tiny_run[0])
    cfg = RunConfig.from_dict(ckpt["config"]).override(score={"map": "both", "map_layers": layers,
                                                              "map_weight": weight})
    data = load_dataset(str(tiles), None, 32)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    scorer = fit_scorer(model, fit, holdout, cfg, make_renderer("torch", 32, torch.device("cpu")))
    assert set(scorer.map_layers) == {int(k) for k in layers.split(",")}
    loaded = Scorer.from_state(scorer.state_dict())
    assert loaded.map_layers == scorer.map_layers and loaded.map_weight == weight
    assert scorer.patches.mean.shape[-1] == {"2,3": 128 + 256, "3,4": 256 + 512}[layers]  # resnet18's channels
    assert set(scorer.map_scales) == {"seg", "density"}
    x = data.test.images
    sources = {"seg": lambda probs, levels: probs,
               "density": lambda probs, levels: scorer.patches.maps(levels.descriptors(tuple(scorer.map_layers)))}
    parts = {k: infer_images(model, x, map_fn=fn).maps for k, fn in sources.items()}
    d = torch.nn.functional.interpolate(parts["density"], size=parts["seg"].shape[-2:], mode="bilinear",
                                        align_corners=False)
    (ls, ts), (ld, td) = scorer.map_scales["seg"], scorer.map_scales["density"]
    want = weight * (parts["seg"] - ls) / (ts - ls) + (1 - weight) * (d - ld) / (td - ld)
    torch.testing.assert_close(infer_images(model, x, map_fn=scorer.map_fn).maps, want)
    scaled = scorer.scale_parts(torch.cat([parts["seg"], d], 1))  # what benchmarks join other ways than the mean
    torch.testing.assert_close(scaled, torch.cat([(parts["seg"] - ls) / (ts - ls), (d - ld) / (td - ld)], 1))
    det = Detector(model, scorer, 32)
    res = det.score(x.numpy())
    with torch.no_grad():
        scores, maps = det.as_module()(x)
    np.testing.assert_allclose(scores.numpy(), res.scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps, res.maps)


def test_with_held_out_images_the_fit_images_maps_are_not_made_and_the_scorer_is_the_same(tiny_run, tiles,
                                                                                          monkeypatch):
    """Held-out images calibrate the maps, so the fit images' maps would go unused: they are not made (a patch
    memory's maps cost more than the network's forward pass), and the fitted scorer is the one made with them."""
    import sslad.training as training
    from sslad.checkpoint import load_checkpoint
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train

    model, _, ckpt = load_checkpoint(tiny_run[0])
    cfg = RunConfig.from_dict(ckpt["config"]).override(score={"map": "both"})
    data = load_dataset(str(tiles), None, 32)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    assert len(holdout) > 1
    real, calls = training.infer_images, []

    def spy(*args, force_maps=False, **kw):
        calls.append((kw.get("progress"), kw.get("maps", True)))
        return real(*args, **{**kw, "maps": True} if force_maps else kw)

    monkeypatch.setattr(training, "infer_images", spy)
    lean = training.fit_scorer(model, fit, holdout, cfg)
    assert ("embed train", False) in calls
    monkeypatch.setattr(training, "infer_images", lambda *a, **kw: spy(*a, force_maps=True, **kw))
    full = training.fit_scorer(model, fit, holdout, cfg)
    a, b = lean.state_dict(), full.state_dict()
    for key in ("threshold", "pixel_threshold", "map_range", "map_scales", "stats"):
        assert a[key] == b[key], key


@pytest.mark.parametrize(("tile", "embedding"), [(0, "pooled"), (16, "pooled+peak")])
def test_the_embedding_pass_draws_the_same_patch_sample_as_a_pass_of_its_own(tiny_run, tiles, tile, embedding):
    """The fit images go through the network once: the patch density's sample is drawn while they are embedded
    (``patch_sink``), the same descriptors and the same embeddings as two passes gave, tiled or whole."""
    from sslad.checkpoint import load_checkpoint
    from sslad.data import load_dataset
    from sslad.models.embed import PatchSampler, infer_images, sample_patches

    model, _, _ = load_checkpoint(tiny_run[0])
    images = load_dataset(str(tiles), None, 32).train.images
    scorer = Scorer(ScoreConfig(embedding=embedding, tile=tile))
    n_tiles = 9 if tile else 1  # 3 x 3 tiles of 16 px at 32 px, stride 8
    for stages in ((2, 3), [(2, 3), (3, 4)]):
        sampler = PatchSampler(len(images), total=500, seed=3, tiles=n_tiles, stages=stages)
        one = infer_images(model, images, batch_size=5, tile=tile, maps=False, embed_fn=scorer.embed_fn,
                           patch_sink=sampler)
        two = infer_images(model, images, batch_size=5, tile=tile, maps=False, embed_fn=scorer.embed_fn)
        own = sample_patches(model, images, total=500, seed=3, batch_size=5, tile=tile, stages=stages)
        for got, want in zip(*(([x] if isinstance(x, torch.Tensor) else x) for x in (sampler.samples(), own)),
                             strict=True):
            assert got.shape[0] > 0 and torch.equal(got, want)
        assert torch.equal(one.embeddings, two.embeddings)


def test_map_both_without_a_per_pixel_head_is_the_density_alone():
    from sslad.config import RunConfig

    cfg = RunConfig().override(train={"seg_weight": 0.0}).resolved()
    assert cfg.score.map == "density"
    assert RunConfig().resolved().score.map == "both"


def test_patch_levels_make_each_stage_set_once_at_its_first_stage_grid():
    """The network hands over its layer2-4 maps; the descriptors of a set of stages are those maps at the first
    one's grid, concatenated and 3x3-averaged, made once per batch however many consumers ask."""
    from sslad.models.net import PatchLevels, patch_descriptors

    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, c, s, s, generator=g) for c, s in ((4, 8), (6, 4), (8, 2))]
    levels = PatchLevels(maps)
    d34 = levels.descriptors((3, 4))
    assert d34.shape == (2, 6 + 8, 4, 4) and levels.descriptors((3, 4)) is d34
    torch.testing.assert_close(d34, patch_descriptors(maps[1:]))
    assert levels.descriptors((2, 3, 4)).shape == (2, 18, 8, 8)
    with pytest.raises(ValueError, match="layer2-4"):
        PatchLevels(maps[:2])


def test_a_scorer_stored_before_map_layers_keeps_layer2_3():
    g = torch.Generator().manual_seed(0)
    scorer = Scorer(ScoreConfig(map_layers="3,4")).fit_patches(torch.randn(100, 3, generator=g))
    scorer.fit(torch.randn(40, 8, generator=g), None, 16, holdout=(torch.randn(10, 8, generator=g), None))
    state = scorer.state_dict()
    assert state["map_layers"] == [3, 4] and Scorer.from_state(state).map_layers == (3, 4)
    old = {k: v for k, v in state.items() if k != "map_layers"}  # a 0.7 checkpoint's scorer
    assert Scorer.from_state(old).map_layers == (2, 3)


def test_unknown_map_layers_are_one_clear_line(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--config",
                                   str(_yaml(tmp_path, "score:\n  map_layers: '1,2'\n")), "--epochs", "0"])
    assert res.exit_code != 0 and "unknown map layers '1,2'" in res.output and "Traceback" not in res.output


def test_auto_keeps_the_simplest_choice_within_the_margin_of_the_best():
    from sslad.scoring.scorer import simplest_within

    order = ["2,3", "3,4", "2,3,4"]
    assert simplest_within({"2,3": 0.90, "3,4": 0.905, "2,3,4": 0.92}, order, 0.01) == "2,3,4"
    assert simplest_within({"2,3": 0.90, "3,4": 0.905, "2,3,4": 0.92}, order, 0.03) == "2,3"
    assert simplest_within({"2,3": float("nan"), "3,4": 0.5, "2,3,4": 0.505}, order, 0.01) == "3,4"


def test_map_layers_auto_keeps_the_choice_whose_maps_outline_the_synthetic_anomalies_best(tiny_run, tiles):
    """``--map-layers auto``: every choice's density maps of the synthetic held-out set are scored by pixel AUROC
    (recorded), the kept one is what the margin rule picks from them, and the scorer is then exactly the one a run
    with that choice fixed would fit."""
    from sslad.backends import make_renderer
    from sslad.checkpoint import load_checkpoint
    from sslad.config import MAP_LAYER_CHOICES, RunConfig
    from sslad.data import load_dataset, split_train
    from sslad.scoring.scorer import parse_stages, simplest_within
    from sslad.training import fit_scorer

    model, _, ckpt = load_checkpoint(tiny_run[0])
    cfg = RunConfig.from_dict(ckpt["config"]).override(score={"map": "both", "map_layers": "auto"})
    data = load_dataset(str(tiles), None, 32)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    renderer = make_renderer("torch", 32, torch.device("cpu"))
    auto = fit_scorer(model, fit, holdout, cfg, renderer)
    values = auto.synthetic_map_auroc
    assert list(values) == list(MAP_LAYER_CHOICES) and len(set(values.values())) > 1
    chosen = simplest_within(values, list(MAP_LAYER_CHOICES), cfg.score.auto_margin)
    assert auto.map_layers == parse_stages(chosen)
    fixed = fit_scorer(model, fit, holdout, cfg.override(score={"map_layers": chosen}), renderer)
    assert torch.equal(auto.patches.mean, fixed.patches.mean) and auto.map_scales == fixed.map_scales
    assert auto.threshold == fixed.threshold and auto.pixel_threshold == fixed.pixel_threshold


@pytest.mark.parametrize(("good_source", "want"), [("seg", 1.0), ("density", 0.0)])
def test_map_weight_auto_keeps_the_join_that_outlines_the_probes(good_source, want):
    """``--map-weight auto``: where one source outlines the probe anomalies exactly (the pixels they altered) and
    the other is noise larger than them, the join that is that source alone has the best probe AUPRO and is
    kept; every candidate's probe AUPRO is recorded."""
    from sslad.config import MAP_WEIGHT_CHOICES
    from sslad.synth.probes import PROBE_SEED_OFFSET, probe_set
    from sslad.training import choose_map_weight

    g = torch.Generator().manual_seed(0)
    views = torch.randint(40, 200, (6, 3, 48, 48), generator=g, dtype=torch.uint8)
    scorer = Scorer()
    scorer.map_scales = {"seg": [0.0, 1.0], "density": [0.0, 1.0]}

    def parts_of(images):
        altered = (images.int() - views.repeat(4, 1, 1, 1).int()).abs().amax(1, keepdim=True).gt(0).float()
        noise = 10 * torch.rand(altered.shape, generator=torch.Generator().manual_seed(1))
        return torch.cat([altered, noise] if good_source == "seg" else [noise, altered], 1)

    weight, values = choose_map_weight(scorer, parts_of, views, seed=3, size=48)
    assert weight == want
    assert set(values) == {str(w) for w in MAP_WEIGHT_CHOICES}
    assert values[str(want)] > 0.9 and values[str(want)] > max(v for k, v in values.items() if k != str(want))
    images, masks = probe_set(views, 3 + PROBE_SEED_OFFSET)  # the views first, unaltered, then each family
    assert images.shape == (24, 3, 48, 48) and torch.equal(images[:6], views)
    assert not masks[:6].any() and all(m.any() for m in masks[6:])


def test_map_weight_auto_on_a_finished_run_is_chosen_recorded_and_stored(tiny_run, tiles):
    """``fit_scorer`` with ``map_weight: auto`` and ``map: both``: the weight is one of the candidates, the best by
    the recorded probe AUPROs (the first of the best), and the stored scorer keeps it and them."""
    from sslad.backends import make_renderer
    from sslad.checkpoint import load_checkpoint
    from sslad.config import MAP_WEIGHT_CHOICES, RunConfig
    from sslad.data import load_dataset, split_train
    from sslad.training import fit_scorer, scorer_choices

    model, _, ckpt = load_checkpoint(tiny_run[0])
    cfg = RunConfig.from_dict({**ckpt["config"], "score": {**ckpt["config"]["score"], "map": "both",
                                                           "map_weight": "auto"}}).validate()
    data = load_dataset(str(tiles), None, 32)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    scorer = fit_scorer(model, fit, holdout, cfg, make_renderer("torch", 32, torch.device("cpu")))
    values = scorer.probe_aupro
    assert list(values) == [str(w) for w in MAP_WEIGHT_CHOICES]
    best = max(values.values())
    assert scorer.map_weight == next(w for w in MAP_WEIGHT_CHOICES if values[str(w)] == best)
    loaded = Scorer.from_state(scorer.state_dict())
    assert loaded.map_weight == scorer.map_weight and loaded.probe_aupro == values
    assert scorer_choices(scorer)["map_weight_chosen"] == scorer.map_weight
    without = fit_scorer(model, fit, holdout, cfg)  # no renderer, no held-out views to probe: the even join
    assert without.map_weight == 0.5 and without.probe_aupro == {}
