"""Feature: density models against numpy / scikit-learn references; metrics."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from sslad.config import ScoreConfig
from sslad.scoring import (
    GaussianDensity,
    KNNDensity,
    density_from_state,
    image_metrics,
    ledoit_wolf,
    make_density,
)


@pytest.fixture
def emb():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(80, 16, generator=g) + 2.0
    test = torch.cat([torch.randn(20, 16, generator=g) + 2.0, torch.randn(20, 16, generator=g) * 3])
    return train, test


def test_ledoit_wolf_matches_sklearn(emb):
    train, _ = emb
    cov, shrink = ledoit_wolf(train)
    ref = LedoitWolf().fit(train.double().numpy())
    np.testing.assert_allclose(cov.numpy(), ref.covariance_, rtol=1e-10, atol=1e-12)
    assert shrink == pytest.approx(ref.shrinkage_, rel=1e-10)


def test_gaussian_scores_match_numpy_mahalanobis(emb):
    train, test = emb
    gde = GaussianDensity().fit(train)
    z = train.double().numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    lw = LedoitWolf().fit(z)
    q = test.double().numpy()
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d = q - z.mean(0)
    ref = np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(lw.covariance_), d))
    np.testing.assert_allclose(gde.score(test).numpy(), ref, rtol=1e-4)


def test_gaussian_separates_outliers(emb):
    train, test = emb
    s = GaussianDensity().fit(train).score(test).numpy()
    assert roc_auc_score([0] * 20 + [1] * 20, s) > 0.9


def test_knn_matches_brute_force(emb):
    train, test = emb
    knn = KNNDensity(k=3).fit(train)
    z = train.numpy() / np.linalg.norm(train.numpy(), axis=1, keepdims=True)
    q = test.numpy() / np.linalg.norm(test.numpy(), axis=1, keepdims=True)
    d = np.linalg.norm(q[:, None] - z[None], axis=2)
    ref = np.sort(d, axis=1)[:, :3].mean(1)
    np.testing.assert_allclose(knn.score(test).numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["gde", "knn"])
def test_state_dict_round_trip(emb, name, tmp_path):
    train, test = emb
    sc = make_density(ScoreConfig(density=name)).fit(train)
    torch.save(sc.state_dict(), tmp_path / "s.pt")
    back = density_from_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert torch.equal(sc.score(test), back.score(test))


def test_unfitted_and_degenerate_inputs_raise():
    with pytest.raises(RuntimeError):
        GaussianDensity().score(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        GaussianDensity().fit(torch.zeros(1, 3))
    with pytest.raises(ValueError):
        density_from_state({"type": "mystery"})


def test_image_metrics_overall_and_per_type():
    types = ["good"] * 4 + ["crack"] * 2 + ["hole"] * 2
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.35, 0.05])
    m = image_metrics(types, scores)
    labels = [0] * 4 + [1] * 4
    assert m["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["per_type_auroc"]["crack"] == 1.0
    hole = roc_auc_score([0] * 4 + [1] * 2, [0.1, 0.2, 0.3, 0.4, 0.35, 0.05])
    assert m["per_type_auroc"]["hole"] == pytest.approx(hole)
    assert m["counts"] == {"crack": 2, "good": 4, "hole": 2}
    assert math.isnan(image_metrics(["good", "good"], np.array([1.0, 2.0]))["image_auroc"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_is_sklearns_with_ties_and_any_dtype(seed, dtype):
    """The rank AUROC (one sort per class) equals sklearn's trapezoidal ROC AUC, ties included; one class is NaN;
    NaN scores and mismatched lengths are errors."""
    from sslad.scoring.metrics import auroc

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[:2] = [True, False]
    scores = (rng.normal(size=n) * 3 + labels).round(int(rng.integers(0, 2)))  # coarse: many ties across classes
    scores = scores.astype(dtype)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores.astype(np.float64)), abs=1e-12)
    assert auroc(labels.astype(np.uint8).reshape(1, -1), scores.reshape(-1, 1)) == pytest.approx(
        roc_auc_score(labels, scores.astype(np.float64)), abs=1e-12)  # any shape: pixels of maps and masks
    assert math.isnan(auroc(np.zeros(3), np.array([1.0, 2.0, 3.0])))  # one class
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="labels for"):
        auroc(np.array([0, 1, 1]), np.array([0.5, 0.7]))


def _spread_normal(rng, shape):
    """Distinct defect-free pixel scores in [0, 1)."""
    return rng.permutation(np.arange(np.prod(shape))).reshape(shape) / np.prod(shape)


def test_pixel_auroc_and_aupro_of_a_perfect_map():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), np.uint8)
    masks[1, 2:6, 2:6] = 1
    masks[2, 8:12, 3:13] = 1
    maps = _spread_normal(rng, masks.shape)
    maps[masks == 1] = 2.0  # every defect pixel above every normal one
    from sslad.scoring import aupro, pixel_metrics

    assert aupro(maps, masks) == pytest.approx(1.0)
    m = pixel_metrics(["good", "a", "b", "good"], maps, masks)
    assert m["pixel_auroc"] == 1.0 and m["per_type_pixel_auroc"] == {"a": 1.0, "b": 1.0}


def test_aupro_averages_regions_not_pixels():
    """A large region found and a small one missed give 0.5, although 100 of 110 defect pixels are found."""
    rng = np.random.default_rng(1)
    masks = np.zeros((2, 20, 20), np.uint8)
    masks[0, 0:10, 0:10] = 1  # 100 px, found
    masks[1, 5:7, 5:10] = 1  # 10 px, missed
    maps = _spread_normal(rng, masks.shape)
    maps[0][masks[0] == 1] = 2.0
    maps[1][masks[1] == 1] = -1.0
    from sslad.scoring import aupro, pixel_metrics

    assert aupro(maps, masks) == pytest.approx(0.5, abs=1e-6)
    # pixel AUROC counts pixels: 100 defect pixels above all normal ones, 10 below
    assert pixel_metrics(["a", "a"], maps, masks)["pixel_auroc"] == pytest.approx(100 / 110, abs=1e-6)


def test_aupro_per_type_says_which_type_loses_it_and_weights_back_to_the_total():
    """Two regions of type a found, one of type b missed: a's AUPRO 1, b's 0, the split's their region-weighted
    mean (2/3), on one false-positive axis (the good image's pixels and the defective images' normal ones)."""
    rng = np.random.default_rng(3)
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[0, 2:6, 2:6] = 1
    masks[0, 12:16, 12:18] = 1  # two regions in one image of type a
    masks[1, 8:10, 3:9] = 1
    maps = _spread_normal(rng, masks.shape)
    maps[0][masks[0] == 1] = 2.0
    maps[1][masks[1] == 1] = -1.0
    from sslad.scoring import aupro, pixel_metrics

    m = pixel_metrics(["a", "b", "good"], maps, masks)
    assert m["per_type_regions"] == {"a": 2, "b": 1}
    assert m["per_type_aupro"] == {"a": pytest.approx(1.0), "b": pytest.approx(0.0, abs=1e-9)}
    assert m["aupro"] == pytest.approx(2 / 3, abs=1e-6) and m["aupro"] == aupro(maps, masks)
    empty = pixel_metrics(["good"], maps[2:], masks[2:])
    assert math.isnan(empty["aupro"]) and empty["per_type_aupro"] == {}


def test_aupro_of_a_half_found_region_and_no_regions():
    rng = np.random.default_rng(2)
    masks = np.zeros((1, 20, 20), np.uint8)
    masks[0, 4:8, 4:12] = 1
    maps = _spread_normal(rng, masks.shape)
    inside = np.argwhere(masks[0] == 1)
    for n, (y, x) in enumerate(inside):
        maps[0, y, x] = 2.0 if n % 2 == 0 else -1.0
    from sslad.scoring import aupro

    assert aupro(maps, masks) == pytest.approx(0.5, abs=1e-6)
    assert math.isnan(aupro(maps, np.zeros_like(masks)))


def test_decision_metrics_at_a_threshold():
    from sslad.scoring import decision_metrics

    types = ["good"] * 4 + ["crack"] * 4
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.25, 0.95])
    d = decision_metrics(types, scores, threshold=0.5)
    assert d["false_positive_rate"] == 0.25 and d["recall"] == 0.75
    # best F1 flags the 6 scores >= 0.25: precision 4/6, recall 1
    assert d["f1_max_uses_test_labels"] is True and d["f1_max"] == pytest.approx(0.8) and d["f1_max_threshold"] == 0.25


def test_tail_threshold_reads_a_high_quantile_off_few_scores_better_than_their_empirical_quantile():
    """The 0.99 quantile of an exponential law (ln 100) from 20 scores: the empirical quantile of so few is about
    their maximum, too low on average; the fitted tail is about right, and the share of new good scores above it
    (the false-positive rate, exp(-t)) about half the empirical quantile's on average, under 0.8 of it at the 90th
    percentile over draws."""
    from sslad.scoring import quantile_threshold, tail_threshold

    rng = np.random.default_rng(0)
    truth = math.log(100)
    draws = rng.exponential(size=(1000, 20)) + 50.0  # an offset: the tail's start is fitted, not assumed at 0
    tail = np.array([tail_threshold(d, 0.99) for d in draws]) - 50.0
    empirical = np.array([quantile_threshold(d, 0.99) for d in draws]) - 50.0
    assert abs(tail.mean() - truth) < 0.25 < abs(empirical.mean() - truth)
    fpr_tail, fpr_empirical = np.exp(-tail), np.exp(-empirical)
    assert fpr_tail.mean() < 0.035 < 0.045 < fpr_empirical.mean()  # measured: 2.6 % and 5.1 %
    assert np.percentile(fpr_tail, 90) < 0.8 * np.percentile(fpr_empirical, 90)
    assert tail_threshold(rng.exponential(size=20_000), 0.99) == pytest.approx(truth, rel=0.05)  # consistent
    few = draws[0]
    assert tail_threshold(few, 0.5) == quantile_threshold(few, 0.5)  # inside the body: the empirical quantile
    assert tail_threshold(few, 1.0) == few.max()
    assert tail_threshold(few, 0.95) < tail_threshold(few, 0.99) < tail_threshold(few, 0.999)
    assert tail_threshold(np.full(10, 3.0), 0.99) == 3.0  # no spread, no excess: the common value


def test_predictive_threshold_keeps_its_promise_on_few_scores_where_the_fitted_tail_does_not():
    """A new good score passes the predictive threshold with probability 1 - q, whatever the number of held-out
    scores, when their tail is exponential: on exponential draws (an offset: the tail's start is read off them)
    the mean false-positive rate exp(-t) is 1 % at 10, 20 and 80 scores (measured 0.99 / 0.99 / 0.99 %), where
    the fitted tail's plug-in quantile passes 4.7 / 2.6 / 1.4 %; on many scores the two agree."""
    from sslad.scoring import predictive_threshold, quantile_threshold, tail_threshold

    rng = np.random.default_rng(0)
    for n, plug_in in ((10, 0.04), (20, 0.024), (80, 0.012)):
        draws = rng.exponential(size=(20_000 if n < 80 else 5_000, n)) + 50.0
        fpr = np.exp(-(np.array([predictive_threshold(d, 0.99) for d in draws]) - 50.0))
        assert fpr.mean() == pytest.approx(0.01, abs=0.0006), n
        assert np.exp(-(np.array([tail_threshold(d, 0.99) for d in draws[:2000]]) - 50.0)).mean() > plug_in, n
    many = rng.exponential(size=20_000)
    assert predictive_threshold(many, 0.99) == pytest.approx(tail_threshold(many, 0.99), rel=0.01)
    some = draws[0]  # 80 scores
    assert predictive_threshold(some, 0.5) == quantile_threshold(some, 0.5)  # inside the body: the empirical one
    assert predictive_threshold(some, 1.0) == some.max()
    assert predictive_threshold(some, 0.95) < predictive_threshold(some, 0.99) < predictive_threshold(some, 0.999)
    assert predictive_threshold(np.full(10, 3.0), 0.99) == 3.0  # no spread: the common value
    # 10 scores: the top 2 over the third largest u; (3/11) (1 + c)^-2 = 0.01 -> c = sqrt(27.27) - 1
    ten = np.arange(10.0)
    assert predictive_threshold(ten, 0.99) == pytest.approx(7.0 + 3.0 * (np.sqrt(300 / 11) - 1.0))


def test_a_threshold_far_above_few_scores_is_noted():
    """The predictive threshold of 10 scores with one far out sits far above them all: the scorer says so in one
    line (lower the quantile, or hold out more); on 77 exponential scores the margin is ordinary: no note."""
    from sslad.config import ScoreConfig
    from sslad.scoring import Scorer

    def scorer(scores):
        sc = Scorer(ScoreConfig())
        sc.calibration = {"set": "holdout", "images": len(scores)}
        sc._set_thresholds(np.asarray(scores, dtype=np.float64), None, None)
        return sc

    few = scorer([40.0, 42, 45, 47, 49, 50, 52, 58, 68, 90])
    assert few.calibration["scores"] == {"median": 49.5, "max": 90.0}
    note = few.margin_note()
    assert note is not None and "10 good images" in note and "--threshold-quantile" in note
    assert scorer(np.random.default_rng(0).exponential(size=77)).margin_note() is None


def test_maps_are_upsampled_and_smoothed_to_the_image():
    from sslad.scoring import to_image_maps

    probs = torch.zeros(2, 1, 8, 8)
    probs[0, 0, 4, 4] = 1.0
    maps = to_image_maps(probs, 32)
    assert maps.shape == (2, 32, 32) and float(maps[1].abs().max()) == 0.0
    peak = divmod(int(maps[0].argmax()), 32)
    assert abs(peak[0] - 18) <= 1 and abs(peak[1] - 18) <= 1  # low-res (4, 4) -> image ~(18, 18)
    assert 0 < float(maps[0].max()) < 1.0 and float(maps[0].sum()) == pytest.approx(16.0, rel=0.05)  # mass kept


def test_scorer_thresholds_come_from_the_held_out_set():
    from sslad.config import ScoreConfig
    from sslad.scoring import Scorer, predictive_threshold, quantile_threshold, tail_threshold

    g = torch.Generator().manual_seed(0)
    fit = (torch.randn(60, 8, generator=g), torch.rand(60, 1, 8, 8, generator=g) * 0.1)
    hold = (torch.randn(30, 8, generator=g) * 1.5, torch.rand(30, 1, 8, 8, generator=g) * 0.2)
    sc = Scorer(ScoreConfig(image_score="embedding", threshold_quantile=0.9)).fit(*fit, 32, holdout=hold)
    s_hold, _ = sc.score(*hold, 32)
    assert sc.calibration == {"set": "holdout", "images": 30, "rule": "predictive",  # the default rule
                              "scores": {"median": pytest.approx(float(np.median(s_hold))),
                                         "max": pytest.approx(float(s_hold.max()))}}
    assert sc.threshold == pytest.approx(predictive_threshold(s_hold, 0.9))
    assert sc.threshold != pytest.approx(quantile_threshold(s_hold, 0.9))
    tail = Scorer(ScoreConfig(image_score="embedding", threshold_quantile=0.9, threshold_rule="tail"))
    assert tail.fit(*fit, 32, holdout=hold).threshold == pytest.approx(tail_threshold(s_hold, 0.9))
    assert Scorer.from_state(tail.state_dict()).threshold_rule == "tail"  # 0.8's checkpoints keep their rule
    emp = Scorer(ScoreConfig(image_score="embedding", threshold_quantile=0.9, threshold_rule="quantile"))
    assert emp.fit(*fit, 32, holdout=hold).threshold == pytest.approx(float(np.quantile(s_hold, 0.9)))
    assert Scorer.from_state(emp.state_dict()).threshold_rule == "quantile"
    old = {k: v for k, v in sc.state_dict().items() if k != "threshold_rule"}  # a checkpoint before 0.8
    assert Scorer.from_state(old).threshold_rule == "quantile"
    assert Scorer.from_state(sc.state_dict()).threshold_rule == "predictive"
    both = Scorer(ScoreConfig(image_score="both")).fit(*fit, 32, holdout=hold)
    s_both, maps = both.score(*hold, 32)
    assert abs(float(np.mean(s_both))) < 1e-6  # each part standardised on the held-out set
    back = Scorer.from_state(both.state_dict())
    s_back, _ = back.score(*hold, 32)
    assert np.allclose(s_back, s_both) and back.threshold == both.threshold and back.map_range == both.map_range


def test_mode_scores_give_every_mode_whatever_the_scorer_uses():
    """What the yardsticks compare: each mode's scores equal those of a scorer fitted to use that mode."""
    from sslad.config import ScoreConfig
    from sslad.scoring import Scorer

    g = torch.Generator().manual_seed(1)
    fit = (torch.randn(60, 8, generator=g), torch.rand(60, 1, 8, 8, generator=g) * 0.1)
    hold = (torch.randn(30, 8, generator=g) * 1.5, torch.rand(30, 1, 8, 8, generator=g) * 0.2)
    new = (torch.randn(12, 8, generator=g) * 2.0, torch.rand(12, 1, 8, 8, generator=g) * 0.3)
    scorers = {m: Scorer(ScoreConfig(image_score=m)).fit(*fit, 32, holdout=hold) for m in ("embedding", "map", "both")}
    every = scorers["embedding"].mode_scores(*new, 32)
    assert set(every) == {"embedding", "map", "both"} and scorers["embedding"].image_score == "embedding"
    for mode, sc in scorers.items():
        np.testing.assert_allclose(every[mode], sc.score(*new, 32)[0])
    assert set(scorers["embedding"].mode_scores(new[0], None, 32)) == {"embedding"}  # no maps: the density alone


def test_density_names_are_the_configs_choices():
    """One vocabulary: the config's density choices are exactly the density classes' names."""
    from sslad.config import DENSITIES
    from sslad.scoring import DENSITY_TYPES

    assert tuple(DENSITY_TYPES) == DENSITIES


def test_the_peak_embedding_sees_a_local_peak_that_the_pooled_mean_averages_away():
    """``pooled+peak``: two images with equal pooled embeddings differ by one location of one descriptor channel;
    the peak half tells them apart, each half L2-normalised, the whole of unit length."""
    from sslad.scoring.scorer import peak_embedding

    pooled = torch.tensor([[3.0, 4.0, 0.0, 0.0]]).repeat(2, 1)
    patches = torch.ones(2, 3, 8, 8)
    patches[1, 2, 5, 5] = 10.0
    asked = []
    levels = SimpleNamespace(descriptors=lambda stages: asked.append(stages) or patches)  # the trunk maps' stand-in
    e = peak_embedding(pooled, levels)
    assert asked == [(2, 3)]  # the peak is always layer2-3's, whatever stages the density maps use
    assert e.shape == (2, 7)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(e[:, :4], torch.tensor([[0.6, 0.8, 0.0, 0.0]]).repeat(2, 1) / math.sqrt(2))
    assert torch.equal(e[0, 4:], torch.full((3,), 1 / math.sqrt(3)) / math.sqrt(2))
    assert e[1, 6] > 0.9 / math.sqrt(2) and e[1, 4] < 0.2  # the peaked channel dominates image 1's peak half


def test_the_scorer_keeps_its_embedding_and_older_scorers_the_pooled_one():
    from sslad.scoring import Scorer
    from sslad.scoring.scorer import peak_embedding

    scorer = Scorer(ScoreConfig())
    assert scorer.embedding == "pooled+peak" and scorer.embed_fn is peak_embedding
    g = torch.Generator().manual_seed(0)
    scorer.fit(torch.randn(40, 8, generator=g), None, 16, holdout=(torch.randn(10, 8, generator=g), None))
    state = scorer.state_dict()
    assert Scorer.from_state(state).embed_fn is peak_embedding
    old = {k: v for k, v in state.items() if k != "embedding"}  # a 0.4 checkpoint's scorer
    assert Scorer.from_state(old).embedding == "pooled" and Scorer.from_state(old).embed_fn is None
    assert Scorer(ScoreConfig(embedding="pooled")).embed_fn is None
