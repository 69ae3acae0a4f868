"""Smoke: ``sslad bench`` in a tiny configuration writes a complete, sane JSON report."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from sslad.cli import cli

KEYS = {"backend", "device", "image_size", "batch_size", "images", "images_per_s", "images_per_s_spread",
        "cpu_s_per_image", "gpu_peak_mem_mb", "mb_per_s", "mode"}


def _has_dali() -> bool:
    import importlib.util

    return importlib.util.find_spec("nvidia.dali") is not None


def test_bench_json_schema_and_values(tmp_path):
    """torch and PIL always; DALI's CPU graph too where DALI is installed (CI installs it)."""
    backends = ("dali", "torch", "pil") if _has_dali() else ("torch", "pil")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["bench", "--backends", ",".join(backends), "--device", "cpu",
                                   "--image-size", "32,48",
                                   "--images", "8", "--batch-size", "12", "--repeats", "2", "--warmup", "1",
                                   "--workers", "1", "--json", str(out), "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    meta = rep["metadata"]
    for k in ("cpu", "cores", "torch", "dali", "python", "commit", "date"):
        assert k in meta
    assert meta["cores"] >= 1 and meta["torch"]
    results = rep["results"]
    expected = {(b, s) for b in backends for s in (32, 48)}
    assert {(r["backend"], r["image_size"]) for r in results} == expected
    for r in results:
        assert KEYS <= set(r)
        assert r["images"] == 24 and r["mode"] == "regeneration" and r["device"] == "cpu"
        for k in ("images_per_s", "cpu_s_per_image", "mb_per_s"):
            assert math.isfinite(r[k]) and r[k] > 0, (r["backend"], k)
        assert r["images_per_s_spread"] >= 0 and r["gpu_peak_mem_mb"] is None
    assert (tmp_path / "p.png").stat().st_size > 0
    assert "img/s" in res.output


def test_bench_training_mode(tmp_path):
    out = tmp_path / "t.json"
    res = CliRunner().invoke(cli, ["bench", "--backends", "torch", "--device", "cpu", "--image-size", "32",
                                   "--images", "6", "--batch-size", "6", "--repeats", "1", "--warmup", "0",
                                   "--training", "--train-steps", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = [r for r in json.loads(out.read_text())["results"] if r["mode"] == "training"]
    assert [r["backend"] for r in rows] == ["resident", "torch"]
    assert all(r["images"] == 12 and r["images_per_s"] > 0 for r in rows)


@pytest.mark.parametrize("args, msg", [
    (["--backends", "opencv"], "unknown backend"),
    (["--image-size", "abc"], "comma-separated"),
    (["--image-size", "8"], "must lie in [32, 4096]"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_bench_bad_flags(args, msg):
    res = CliRunner().invoke(cli, ["bench", *args])
    assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output
