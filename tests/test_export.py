"""Feature: exported models (ONNX via onnxruntime, TorchScript) give predict's scores and maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sslad.cli import cli


@pytest.fixture(scope="module")
def run_and_native(tiny_run, tiles):
    """A finished run, the blob test images as uint8, and sslad's own scores and maps for them."""
    import sslad

    det = sslad.load(tiny_run[0], "cpu").score(sorted((tiles / "test" / "blob").glob("*.png")))
    return tiny_run[0], det.images, det.scores, det.maps.numpy(), sslad.load(tiny_run[0], "cpu").scorer


def close(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def test_onnx_export_matches_predict(run_and_native, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    run, images, scores, maps, scorer = run_and_native
    res = CliRunner().invoke(cli, ["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got_scores, got_maps = sess.run(None, {"images": images.numpy()})  # uint8 in, any batch size
    assert got_scores.dtype == np.float32 and got_scores.shape == (len(images),) and got_maps.shape == maps.shape
    close(got_scores, scores)
    close(got_maps, maps)
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["threshold"] == scorer.threshold and side["image_size"] == 32 and side["outputs"] == ["scores", "maps"]
    assert side["run_inference_precision"] == side["graph_precision"] == "fp32"  # the scores above: exact
    one, _ = sess.run(None, {"images": images[:1].numpy()})
    close(one, scores[:1])


def test_torchscript_export_matches_predict(run_and_native):
    run, images, scores, maps, _ = run_and_native
    res = CliRunner().invoke(cli, ["export", str(run / "model.pt"), "--format", "torchscript"])
    assert res.exit_code == 0, res.output
    m = torch.jit.load(str(run / "model.torchscript.pt"))
    with torch.no_grad():
        got_scores, got_maps = m(images)
    close(got_scores.numpy(), scores)
    close(got_maps.numpy(), maps)
