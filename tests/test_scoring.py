"""Feature: density models against numpy / scikit-learn references; metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from sslad.config import ScoreConfig
from sslad.scoring import (
    GaussianDensity,
    KNNDensity,
    image_metrics,
    ledoit_wolf,
    make_scorer,
    scorer_from_state,
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
    sc = make_scorer(ScoreConfig(scorer=name)).fit(train)
    torch.save(sc.state_dict(), tmp_path / "s.pt")
    back = scorer_from_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert torch.equal(sc.score(test), back.score(test))


def test_unfitted_and_degenerate_inputs_raise():
    with pytest.raises(RuntimeError):
        GaussianDensity().score(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        GaussianDensity().fit(torch.zeros(1, 3))
    with pytest.raises(ValueError):
        scorer_from_state({"type": "mystery"})


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
