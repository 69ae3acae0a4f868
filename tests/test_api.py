"""Feature: the public Python API (``sslad.load``, ``Detector.score``, ``sslad.train``, ``sslad.train_student``)
gives the CLI's numbers."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sslad
from sslad.cli import cli
from sslad.errors import SsladError


@pytest.fixture(scope="module")
def detector(tiny_run):
    return sslad.load(tiny_run[0], "cpu")


def test_score_paths_gives_predicts_numbers(detector, tiny_run, tiles, tmp_path):
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    det = detector.score(files)
    res = CliRunner().invoke(cli, ["predict", str(tiny_run[0]), str(tiles / "test" / "blob"), "--out",
                                   str(tmp_path / "p.csv"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"] for r in rows] == det.paths == [str(f) for f in files]
    np.testing.assert_allclose(det.scores, [float(r["score"]) for r in rows], rtol=1e-5)
    assert [r["predicted_anomalous"] for r in rows] == [str(int(a)) for a in det.anomalous]
    assert det.scores.shape == (6,) and det.anomalous.dtype == bool and det.maps.shape == (6, 32, 32)
    assert np.array_equal(det.anomalous, det.scores > detector.threshold)


def test_score_arrays_equals_score_paths(detector, tiles):
    files = sorted((tiles / "test" / "good").glob("*.png"))
    by_path = detector.score(files)
    as_tensor = detector.score(by_path.images)  # uint8 (N, 3, S, S) tensor
    as_array = detector.score(by_path.images.numpy())
    assert np.array_equal(as_tensor.scores, by_path.scores) and np.array_equal(as_array.scores, by_path.scores)
    assert torch.equal(as_tensor.maps, by_path.maps)


def test_score_resizes_other_sizes_and_returns_maps_at_the_input_size(detector):
    x = torch.randint(0, 256, (2, 3, 48, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    det = detector.score(x)
    assert det.scores.shape == (2,) and det.maps.shape == (2, 48, 40)


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
                                 np.zeros((32, 32, 3), np.uint8)], ids=["float", "one-channel", "hwc"])
def test_score_refuses_what_it_cannot_read(detector, bad):
    with pytest.raises(SsladError, match="uint8 RGB images"):
        detector.score(bad)


def test_unreadable_files_are_skipped_and_listed(detector, tiles, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    det = detector.score([tiles / "test" / "good" / "000.png", tmp_path / "bad.png"])
    assert len(det.scores) == 1 and [p for p, _ in det.skipped] == [str(tmp_path / "bad.png")]


def test_train_takes_a_dict_and_returns_the_run_folder(tiles, tmp_path):
    run = sslad.train({"data": {"path": str(tiles), "image_size": 32}, "train": {"epochs": 1, "batch_size": 12,
                                                                              "device": "cpu"}}, tmp_path / "r")
    assert run == tmp_path / "r" and (run / "model.pt").is_file()
    det = sslad.load(run)
    assert det.image_size == 32 and det.info["config"]["train"]["epochs"] == 1
    with pytest.raises(SsladError, match="already holds a run"):
        sslad.train({"data": {"path": str(tiles)}}, run)


@pytest.mark.parametrize("student, match", [("resnet99", "unknown student arch"), ({"epochs": 0}, "--epochs"),
                                            ({"arhc": "resnet10"}, "unknown student setting.*arhc"),
                                            (3, "student must be")])
def test_a_bad_student_is_refused_before_training(tiles, tmp_path, student, match):
    with pytest.raises(SsladError, match=match):
        sslad.train({"data": {"path": str(tiles), "image_size": 32}, "train": {"epochs": 1, "device": "cpu"}},
                    tmp_path / "r", student=student)
    assert not (tmp_path / "r").exists()


def test_older_checkpoints_still_load(tiny_run, tmp_path, detector, tiles):
    """Format 2 kept the threshold twice and the image size in the scorer; format 1 the density alone."""
    ck = torch.load(tiny_run[0] / "model.pt", weights_only=True)
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    want = detector.score(files).scores
    v2 = {**ck, "format_version": 2, "threshold": ck["scorer"]["threshold"],
          "scorer": {**ck["scorer"], "image_size": 32}}
    (tmp_path / "v2").mkdir()
    torch.save(v2, tmp_path / "v2" / "model.pt")
    np.testing.assert_array_equal(sslad.load(tmp_path / "v2").score(files).scores, want)
    v1 = {**ck, "format_version": 1, "threshold": 1.5, "scorer": ck["scorer"]["density"]}
    (tmp_path / "v1").mkdir()
    torch.save(v1, tmp_path / "v1" / "model.pt")
    old = sslad.load(tmp_path / "v1")
    assert old.threshold == 1.5 and old.scorer.image_score == "embedding"


def test_calibrate_moves_the_thresholds_and_keeps_the_scores(tiny_run, tmp_path, detector, tiles):
    """``sslad.calibrate``: a lower quantile, a lower threshold, the same scores; the values before are returned."""
    import shutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy2(tiny_run[0] / "model.pt", run_dir / "model.pt")
    files = sorted((tiles / "test" / "blob").glob("*.png"))
    res = sslad.calibrate(run_dir, quantile=0.5, device="cpu")
    assert res["images"] == 3 and res["set"] == "holdout"
    assert res["previous"]["threshold"] == pytest.approx(detector.threshold, rel=1e-6)
    assert res["new"]["quantile"] == 0.5 and res["new"]["rule"] == res["previous"]["rule"] == "predictive"
    after = sslad.load(run_dir, "cpu")
    assert after.threshold == pytest.approx(res["new"]["threshold"])
    assert after.threshold < detector.threshold
    np.testing.assert_allclose(after.score(files).scores, detector.score(files).scores, rtol=1e-6)
    with pytest.raises(SsladError, match="unknown threshold rule 'max'"):
        sslad.calibrate(run_dir, rule="max")


def test_api_names_are_not_shadowed_by_submodules():
    """``import sslad.<module>`` sets a package attribute: no submodule may be named like an API function."""
    import sslad.detector  # noqa: F401
    import sslad.distill  # noqa: F401
    import sslad.thresholds  # noqa: F401
    import sslad.training  # noqa: F401

    assert callable(sslad.train) and callable(sslad.load) and callable(sslad.train_student)
    assert callable(sslad.calibrate)
    assert sslad.Detector.__name__ == "Detector"
