"""Smoke + exception: the CLI end to end on a tiny generated MVTec-layout folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import sslad
from conftest import TINY
from helpers import auroc_of_scores_csv
from sslad.cli import cli
from sslad.errors import SsladError


def run(args, ok=True):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.fixture
def trained(tiny_run):
    return tiny_run


def test_train_writes_the_run_folder(trained):
    out, res = trained
    for name in ("config.yaml", "metrics.csv", "metrics.json", "scores.csv", "model.pt", "pretext_samples.png",
                 "report.png"):
        assert (out / name).is_file(), name
    assert "image AUROC" in res
    # the silent minutes after the last epoch are announced, in order, before the results
    lines = res.splitlines()
    fitting = lines.index("fitting the scorer on 9 good images, thresholds from 3 held-out ones "
                          "(1 network pass per image)")
    assert fitting < lines.index("scoring 12 test images") < next(i for i, x in enumerate(lines) if "image AUROC" in x)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["image_size"] == 32 and cfg["train"]["epochs"] == 2 and cfg["train"]["seed"] == 1
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["regen_index"]) for r in rows] == [0, 1]  # regenerated every epoch
    assert all(math.isfinite(float(r["loss"])) and float(r["images_per_s"]) > 0 for r in rows)
    m = json.loads((out / "metrics.json").read_text())
    assert m["image_auroc"] == pytest.approx(auroc_of_scores_csv(out / "scores.csv"), abs=1e-6)
    assert set(m["per_type_auroc"]) == {"blob"} and m["counts"] == {"blob": 6, "good": 6}
    # 12 good training images: 3 held out (a quarter at most), 9 train -> 27 synthetic images, 2 steps of 12 per epoch
    assert m["train_images"] == 9 and m["holdout_images"] == 3 and m["steps"] == 4
    scores = list(csv.DictReader(open(out / "scores.csv")))
    assert len(scores) == 12 and {r["defect_type"] for r in scores} == {"good", "blob"}
    assert all(r["label"] == str(int(r["defect_type"] != "good")) for r in scores)


def test_checkpoint_is_self_describing(trained):
    out, _ = trained
    ck = torch.load(out / "model.pt", weights_only=True)
    assert ck["format"] == "sslad-checkpoint" and ck["format_version"] == 3
    assert ck["model_args"]["arch"] == "resnet18" and ck["model_args"]["seg_head"] is True
    assert ck["preprocessing"]["image_size"] == 32
    sc = ck["scorer"]
    # the density's embedding: layer4 pooled (512) and the layer2-3 descriptors' peak (128 + 256)
    assert sc["embedding"] == "pooled+peak" and sc["density"]["type"] == "gde"
    assert sc["density"]["mean"].shape == (512 + 128 + 256,)
    # every mode's AUROC on synthetic anomalies of the held-out images is recorded; the chosen mode is stored
    assert set(sc["synthetic_auroc"]) == {"embedding", "map", "both"} and sc["image_score"] in sc["synthetic_auroc"]
    # the thresholds' images and rule: 3 held-out images, their scores' predictive bound (no augmented views)
    assert {k: v for k, v in sc["calibration"].items() if k != "scores"} == {"set": "holdout", "images": 3,
                                                                             "rule": "predictive"}
    assert set(sc["calibration"]["scores"]) == {"median", "max"} and sc["quantile"] == 0.99
    assert sc["threshold_rule"] == "predictive"
    assert ck["config"]["synth"]["backend"] == "torch" and ck["epoch"] == 2 and ck["regen_index"] == 1
    assert ck["config"]["synth"]["color"] == "gray" and ck["config"]["train"]["lr"] == 3e-4  # resolved values
    assert "threshold" not in ck and math.isfinite(sc["threshold"])  # stored once, in the scorer
    lo, hi = sc["map_range"]
    assert lo < sc["pixel_threshold"] < hi


def test_eval_reproduces_train_auroc(trained, tiles, tmp_path):
    out, _ = trained
    res = run(["eval", str(out), str(tiles), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert b["image_auroc"] == pytest.approx(a["image_auroc"], abs=1e-9)
    sa = [float(r["score"]) for r in csv.DictReader(open(out / "scores.csv"))]
    sb = [float(r["score"]) for r in csv.DictReader(open(tmp_path / "ev" / "scores.csv"))]
    assert sa == pytest.approx(sb, rel=1e-4)
    assert "image AUROC" in res.output


def test_a_run_trained_to_score_in_bf16_is_scored_so_by_eval_and_exported_close(tiles, tmp_path):
    """``--inference-precision bf16`` end to end: recorded in metrics.json, ``eval`` recomputes the run's scores
    (the stored precision, not the default fp32), the export's sidecar says so and its fp32 graph scores within a
    few per cent of ``predict``'s."""
    out = tmp_path / "bf16"
    run(["train", str(tiles), "--out", str(out), *TINY, "--epochs", "1", "--inference-precision", "bf16"])
    assert json.loads((out / "metrics.json").read_text())["inference_precision"] == "bf16"
    run(["eval", str(out), str(tiles), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    sa = [float(r["score"]) for r in csv.DictReader(open(out / "scores.csv"))]
    sb = [float(r["score"]) for r in csv.DictReader(open(tmp_path / "ev" / "scores.csv"))]
    assert sa == pytest.approx(sb, rel=1e-4)
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    run(["export", str(out), "--out", str(tmp_path / "m.onnx")])
    assert json.loads((tmp_path / "m.onnx.json").read_text())["run_inference_precision"] == "bf16"
    det = sslad.load(out, "cpu").score(sorted((tiles / "test" / "blob").glob("*.png")))
    got, _ = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": det.images.numpy()})
    assert not np.allclose(got, det.scores, rtol=1e-6, atol=0)  # the graph is fp32, the run's scores bf16 ...
    np.testing.assert_allclose(got, det.scores, rtol=0.05, atol=0.02 * np.abs(det.scores).max())  # ... close


def test_eval_default_out_is_run_eval(trained, tiles):
    out, _ = trained
    run(["eval", str(out), str(tiles), "--device", "cpu"])
    assert (out / "eval" / "metrics.json").is_file()


def test_predict_scores_a_folder(trained, tiles, tmp_path):
    out, _ = trained
    res = run(["predict", str(out), str(tiles / "test" / "blob"), "--out", str(tmp_path / "p.csv"),
               "--device", "cpu"])
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 6 and all(r["predicted_anomalous"] in ("0", "1") for r in rows)
    assert "6 images scored" in res.output


def test_predict_scores_one_image_file_as_in_its_folder(trained, tiles, tmp_path):
    out, _ = trained
    folder = tiles / "test" / "blob"
    one = sorted(folder.iterdir())[2]
    run(["predict", str(out), str(folder), "--out", str(tmp_path / "all.csv"), "--device", "cpu"])
    res = run(["predict", str(out), str(one), "--out", str(tmp_path / "one.csv"), "--device", "cpu"])
    rows = list(csv.DictReader(open(tmp_path / "one.csv")))
    by_path = {r["path"]: r for r in csv.DictReader(open(tmp_path / "all.csv"))}
    assert "1 images scored" in res.output and [r["path"] for r in rows] == [str(one)]
    # the same score up to float rounding: a batch of one and a batch of six take different oneDNN paths on some CPUs
    assert float(rows[0]["score"]) == pytest.approx(float(by_path[str(one)]["score"]), rel=1e-5)


def test_regen_every_n_reuses_the_set_between_regenerations(tiles, tmp_path):
    out = tmp_path / "regen2"
    res = run(["train", str(tiles), "--out", str(out), *TINY[:2], "--epochs", "5", "--batch-size", "12",
               "--device", "cpu", "--regen-every", "2", "--trunk-lr", "2"])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert "adam lr 0.0003 (trunk x2)," in res.output  # a trunk factor other than 1 is said where the rate is
    assert [int(r["regen_index"]) for r in rows] == [0, 0, 1, 1, 2]
    assert [float(r["regen_s"]) > 0 for r in rows] == [True, False, True, False, True]
    assert [line.split(":")[0] for line in res.output.splitlines() if "samples in" in line] == [
        "regeneration 0", "regeneration 1", "regeneration 2"]
    assert "(seed 2)" in res.output  # seed 0 + k for k = 2


def test_threshold_is_read_off_the_held_out_good_scores(trained):
    """The stored thresholds are the 0.99 quantile of the held-out good training images' scores (image scores, map
    maxima) as the default rule reads it: the predictive bound of their exponential tail, however few (here 3)."""
    from sslad.checkpoint import load_checkpoint
    from sslad.data import holdout_split, load_dataset
    from sslad.models import infer_images
    from sslad.scoring import predictive_threshold

    out, _ = trained
    model, scorer, ck = load_checkpoint(out)
    data = load_dataset(ck["config"]["data"]["path"], None, 32, splits=("train",))
    _, hold = holdout_split(len(data.train), 0.1, 10)
    held_out = data.train.subset(hold)
    res = infer_images(model, held_out.images, map_fn=scorer.map_fn, embed_fn=scorer.embed_fn)  # as the scorer
    scores, maps = scorer.score(res.embeddings, res.maps, 32)
    assert scorer.calibration == {"set": "holdout", "images": 3, "rule": "predictive",
                                  "scores": {"median": pytest.approx(float(np.median(scores)), rel=1e-5),
                                             "max": pytest.approx(float(scores.max()), rel=1e-5)}}
    assert scorer.threshold == pytest.approx(predictive_threshold(scores, 0.99), rel=1e-5, abs=1e-6)
    maxima = maps.flatten(1).amax(1).numpy()
    assert scorer.pixel_threshold == pytest.approx(predictive_threshold(maxima, 0.99), rel=1e-5)
    assert scorer.threshold > scores.max() and scorer.pixel_threshold > maxima.max()  # 3 images: far above them
    assert json.loads((out / "metrics.json").read_text())["threshold_rule"] == "predictive"


def test_holdout_split_is_deterministic_and_disjoint():
    from sslad.data import holdout_split

    fit, hold = holdout_split(761, 0.1, 10)
    assert len(hold) == 77 and len(fit) == 761 - 77 and not set(fit) & set(hold)
    assert sorted(set(fit) | set(hold)) == list(range(761))
    assert np.array_equal(holdout_split(761, 0.1, 10)[1], hold)  # deterministic
    assert np.diff(hold).min() >= 9  # spread over the sorted names, not a block
    assert len(holdout_split(40, 0.1, 10)[1]) == 10 and len(holdout_split(12, 0.1, 10)[1]) == 3  # min, <= n/4
    assert len(holdout_split(7, 0.1, 10)[1]) == 0 and len(holdout_split(100, 0.0, 10)[1]) == 0


def test_predict_uses_the_stored_threshold(trained, tiles, tmp_path):
    """Thresholds round-trip through model.pt into predict's decisions."""
    out, _ = trained
    threshold = torch.load(out / "model.pt", weights_only=True)["scorer"]["threshold"]
    run(["predict", str(out), str(tiles / "test" / "good"), "--out", str(tmp_path / "p.csv"), "--device", "cpu"])
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["predicted_anomalous"] for r in rows] == [str(int(float(r["score"]) > threshold)) for r in rows]


def test_epochs_zero_scores_with_the_untrained_network(tiles, tmp_path):
    """The untrained baseline: a normal run folder, no training rows, the scorer fitted as usual; the network is the
    one the flags describe (here a U-Net decoder of width 16: its last block has 8 channels)."""
    out = tmp_path / "untrained"
    run(["train", str(tiles), "--out", str(out), "--image-size", "32", "--epochs", "0", "--device", "cpu",
         "--seg-width", "16"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 0 and m["steps"] == 0 and math.isfinite(m["threshold"])
    assert m["image_auroc"] == pytest.approx(auroc_of_scores_csv(out / "scores.csv"), abs=1e-6)
    assert list(csv.DictReader(open(out / "metrics.csv"))) == []
    ck = torch.load(out / "model.pt", weights_only=True)
    assert ck["epoch"] == 0 and ck["model_args"]["seg_width"] == 16 and ck["state_dict"]["seg.out.weight"].shape[1] == 8


def test_baseline_is_the_epochs_zero_run_beside_the_trained_one(tiles, tmp_path, trained):
    """--baseline scores the run's first weights exactly as an --epochs 0 run with the same seed does (the same image
    and pixel AUROC, to the last digit), reports it beside the trained network's, and says what training was worth."""
    out, zero = tmp_path / "with_baseline", tmp_path / "zero"
    res = run(["train", str(tiles), "--out", str(out), *TINY, "--baseline"])
    untrained = [("0" if prev == "--epochs" else a) for prev, a in zip(["", *TINY], TINY, strict=False)]
    run(["train", str(tiles), "--out", str(zero), *untrained])
    m, z = (json.loads((d / "metrics.json").read_text()) for d in (out, zero))
    base = m["untrained"]
    assert base["image_auroc"] == pytest.approx(z["image_auroc"], abs=1e-12)
    assert base["pixel_auroc"] == pytest.approx(z["pixel_auroc"], abs=1e-12) and base["aupro"] == z["aupro"]
    assert base["per_type_auroc"] == z["per_type_auroc"]
    gain = 100 * (m["image_auroc"] - base["image_auroc"])
    assert f"image AUROC {100 * base['image_auroc']:.1f} (the pretext training: {gain:+.1f} points)" in res.output
    # ... and keeps it as a run of its own: the --epochs 0 run's detector, to predict, evaluate or export with
    saved = out / "untrained"
    assert base["run_dir"] == str(saved) and (saved / "config.yaml").is_file()
    assert (saved / "scores.csv").read_text() == (zero / "scores.csv").read_text()
    kept, zeroth = sslad.load(saved, "cpu"), sslad.load(zero, "cpu")
    assert kept.info["epoch"] == 0 and kept.threshold == zeroth.threshold
    plain = json.loads((trained[0] / "metrics.json").read_text())
    assert "untrained" not in plain and not (trained[0] / "untrained").exists()  # off by default
    assert m["image_auroc"] == plain["image_auroc"]  # the run's own result is what it is without the flag


def test_config_yaml_holds_every_resolved_value(trained):
    out, _ = trained
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    nulls = [f"{s}.{k}" for s, sec in cfg.items() for k, v in sec.items() if v is None and k != "category"]
    assert nulls == [] and cfg["train"]["precision"] in ("fp32", "bf16") and cfg["synth"]["color"] == "gray"


def test_inference_precision_auto_is_resolved_on_the_device_and_stored(tiles, tmp_path):
    """``auto`` becomes bf16 where the CPU computes it natively, fp32 elsewhere, in config.yaml and metrics.json
    alike (the scorer stores the same, so eval and predict follow it)."""
    from sslad.runtime import cpu_has_bf16

    out = tmp_path / "auto"
    run(["train", str(tiles), "--out", str(out), *TINY, "--epochs", "0", "--inference-precision", "auto"])
    want = "bf16" if cpu_has_bf16() else "fp32"
    assert yaml.safe_load((out / "config.yaml").read_text())["score"]["inference_precision"] == want
    assert json.loads((out / "metrics.json").read_text())["inference_precision"] == want
    assert sslad.load(out, "cpu").scorer.precision == want


def test_predict_maps_writes_an_overlay_per_image(trained, tiles, tmp_path):
    from PIL import Image

    out, _ = trained
    res = run(["predict", str(out), str(tiles / "test" / "blob"), "--out", str(tmp_path / "p.csv"), "--maps",
               "--device", "cpu"])
    pngs = sorted((tmp_path / "maps").glob("*.png"))
    assert [p.stem for p in pngs] == [p.stem for p in sorted((tiles / "test" / "blob").glob("*.png"))]
    assert Image.open(pngs[0]).size == (32, 32)  # the image as the model saw it (decoded once)
    assert "maps in" in res.output


def test_predict_scores_a_folder_a_chunk_at_a_time_as_at_once(trained, tiles, tmp_path):
    """predict decodes, scores and draws a chunk of files at a time (memory of one chunk, whatever the folder's
    size): the same rows, decisions and overlays as in one chunk, a chunk of unreadable files only included."""
    import shutil

    from sslad.predict import predict_folder

    out, _ = trained
    folder = tmp_path / "in"
    shutil.copytree(tiles / "test" / "blob", folder)
    for name in ("zz_bad1.png", "zz_bad2.png"):  # the last chunk of 2: nothing readable in it
        (folder / name).write_bytes(b"not an image")
    files = sorted(folder.iterdir())
    dets = list(sslad.load(out, "cpu").score_chunks(files, 2))
    assert [len(d.paths) for d in dets] == [2, 2, 2, 0] and [len(d.scores) for d in dets] == [2, 2, 2, 0]
    assert [len(d.maps) for d in dets[:3]] == [2, 2, 2]
    assert [p for p, _ in dets[3].skipped] == [str(f) for f in files[6:]]
    rows = {}
    for chunk in (2, 256):
        res = predict_folder(str(out), str(folder), str(tmp_path / f"p{chunk}.csv"), "cpu", maps=True, chunk=chunk)
        assert res["images"] == 6 and [p for p, _ in res["skipped"]] == [str(folder / "zz_bad1.png"),
                                                                         str(folder / "zz_bad2.png")]
        rows[chunk] = list(csv.DictReader(open(tmp_path / f"p{chunk}.csv")))
        assert len(list((tmp_path / "maps").glob("*.png"))) == 6
        shutil.rmtree(tmp_path / "maps")
    assert [(r["path"], r["predicted_anomalous"], r["error"]) for r in rows[2]] == [
        (r["path"], r["predicted_anomalous"], r["error"]) for r in rows[256]]
    assert [float(r["score"]) for r in rows[2][:6]] == pytest.approx([float(r["score"]) for r in rows[256][:6]],
                                                                     rel=1e-5)
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "bad" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "bad" / name).write_bytes(b"")
    with pytest.raises(SsladError, match="none of the 3 images could be read"):
        predict_folder(str(out), str(tmp_path / "bad"), str(tmp_path / "none.csv"), "cpu", chunk=2)
    assert not (tmp_path / "none.csv").exists()


def _copy_run(run_dir: Path, dest: Path) -> Path:
    import shutil

    dest.mkdir()
    for name in ("model.pt", "config.yaml"):
        shutil.copy2(run_dir / name, dest / name)
    return dest


def test_calibrate_sets_the_thresholds_again_from_the_held_out_images(trained, tiles, tmp_path):
    """``sslad calibrate`` redraws the run's held-out split and scores it as the fit did: at the run's own rule
    and quantile it stores the same thresholds; at another it stores that rule's reading of the same scores
    (the previous values kept), and predict / eval decide by them while the scores stay."""
    from sslad.checkpoint import load_checkpoint
    from sslad.data import holdout_split, load_dataset
    from sslad.scoring import tail_threshold

    out = _copy_run(trained[0], tmp_path / "run")
    before = sslad.load(out, "cpu")
    res = run(["calibrate", str(out), "--device", "cpu"])
    assert "note: " in res.output and "wide margin" in res.output  # 3 images set a 0.99 quantile only that way
    same = sslad.load(out, "cpu")
    assert same.threshold == pytest.approx(before.threshold, rel=1e-6)
    assert same.pixel_threshold == pytest.approx(before.pixel_threshold, rel=1e-6)
    res = run(["calibrate", str(out), "--threshold-quantile", "0.9", "--threshold-rule", "tail", "--device", "cpu"])
    assert "3 held-out good images" in res.output and "predictive -> tail" in res.output
    assert "wide margin" not in res.output
    data = load_dataset(str(tiles), None, 32, splits=("train",))
    held_out = data.train.subset(holdout_split(len(data.train), 0.1, 10)[1])
    det = sslad.load(out, "cpu")
    scored = det.score(held_out.images)
    np.testing.assert_allclose(scored.scores, before.score(held_out.images).scores, rtol=1e-6)  # scores stay
    assert det.threshold == pytest.approx(tail_threshold(scored.scores, 0.9), rel=1e-6)
    assert det.pixel_threshold == pytest.approx(tail_threshold(scored.maps.flatten(1).amax(1).numpy(), 0.9), rel=1e-5)
    assert det.threshold < before.threshold  # predictive at 0.99 on 3 images sits far above their scores
    scorer = load_checkpoint(out)[1]
    assert scorer.quantile == 0.9 and scorer.threshold_rule == "tail" and scorer.calibration["rule"] == "tail"
    first, second = scorer.calibration["previous"]
    assert second["threshold"] == pytest.approx(before.threshold, rel=1e-6) and second["rule"] == "predictive"
    assert first["quantile"] == 0.99 and second["pixel_threshold"] == pytest.approx(before.pixel_threshold, rel=1e-6)
    run(["eval", str(out), str(tiles), "--device", "cpu"])
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert m["threshold"] == pytest.approx(det.threshold) and m["threshold_rule"] == "tail"
    assert m["threshold_quantile"] == 0.9


@pytest.mark.parametrize("args, message", [
    (["--threshold-quantile", "1.5"], "--threshold-quantile must lie in (0, 1]"),
    (["--threshold-rule", "quantile"], "which only training renders: use predictive or tail"),
    (["--data", "FEWER"], "gives 2 held-out images where the run set its thresholds on 3"),
    (["--data", "NONE"], "not found"),
])
def test_calibrate_refuses_bad_input_in_one_line_and_keeps_the_run(trained, tiles, tmp_path, args, message):
    import shutil

    out = _copy_run(trained[0], tmp_path / "run")
    fewer = tmp_path / "fewer"
    shutil.copytree(tiles, fewer)
    for extra in sorted((fewer / "train" / "good").iterdir())[:4]:  # 8 good images: 2 held out
        extra.unlink()
    args = [{"FEWER": str(fewer), "NONE": str(tmp_path / "none")}.get(a, a) for a in args]
    kept = (out / "model.pt").read_bytes()
    res = run(["calibrate", str(out), "--device", "cpu", *args], ok=False)
    assert res.exit_code != 0 and message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert (out / "model.pt").read_bytes() == kept


def test_train_refuses_to_overwrite_a_run(trained, tiles):
    out, _ = trained
    res = run(["train", str(tiles), "--out", str(out), *TINY], ok=False)
    assert res.exit_code != 0 and "already holds a run" in res.output
    assert (out / "model.pt").is_file()


def test_config_file_and_flags(tiles, tmp_path):
    cfgf = tmp_path / "c.yaml"
    cfgf.write_text(yaml.safe_dump({"train": {"epochs": 1, "batch_size": 12}, "synth": {"scar": "line"},
                                    "score": {"density": "knn", "knn_k": 2}}))
    out = tmp_path / "r"
    run(["train", str(tiles), "--out", str(out), "--config", str(cfgf), "--image-size", "32",
         "--device", "cpu", "--epochs", "1"])
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["synth"]["scar"] == "line" and cfg["score"]["density"] == "knn" and cfg["train"]["batch_size"] == 12
    assert torch.load(out / "model.pt", weights_only=True)["scorer"]["density"]["type"] == "knn"


def test_preview_writes_plan_samples_and_grids(tiles, tmp_path):
    from PIL import Image

    out = tmp_path / "pv"
    run(["preview", str(tiles), "--out", str(out), "--count", "9", "--seed", "3", "--image-size", "32",
         "--device", "cpu"])
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["samples"]) == 9 and plan["seed"] == 3
    assert [s["class"] for s in plan["samples"][:3]] == ["good", "cutpaste", "scar"]
    files = sorted(p.name for p in (out / "samples").iterdir() if "_mask" not in p.name)
    assert files[:3] == ["0000_good.png", "0001_cutpaste.png", "0002_scar.png"] and len(files) == 9
    masks = [np.asarray(Image.open(out / s["mask"])) for s in plan["samples"]]
    assert [int(m.max()) for m in masks[:3]] == [0, 255, 255]  # class 0 has an empty mask
    for name in ("grid_good.png", "grid_cutpaste.png", "grid_scar.png"):
        assert (out / name).is_file()
    # Preview shows exactly regeneration 0 of a training run with the same seed.
    from sslad.synth import balanced_plan

    p0 = balanced_plan(9, 1, 32, seed=3, scar="line", gray=True)  # 12 train images, 3 held out
    assert [s["box"] for s in plan["samples"]] == [[round(v, 4) for v in b.tolist()] for b in p0.box[:9]]


def test_preview_draws_log_uniform_blob_sizes_from_the_flags(tiles, tmp_path):
    """--blob-area and --blob-sizes reach the plan preview renders (the plan a training run would draw)."""
    from sslad.synth import balanced_plan

    out = tmp_path / "pv"
    run(["preview", str(tiles), "--out", str(out), "--count", "9", "--seed", "3", "--image-size", "64",
         "--device", "cpu", "--irregular", "1", "--blob-area", "0.6", "--blob-sizes", "log"])
    boxes = [s["box"] for s in json.loads((out / "plan.json").read_text())["samples"]]
    kw = dict(seed=3, scar="line", gray=True, irregular=1.0, blob_area=0.6)
    log, uni = balanced_plan(9, 1, 64, blob_sizes="log", **kw), balanced_plan(9, 1, 64, **kw)
    assert boxes == [[round(v, 4) for v in b.tolist()] for b in log.box[:9]]
    assert boxes != [[round(v, 4) for v in b.tolist()] for b in uni.box[:9]]


@pytest.mark.parametrize("args, message", [
    (["--image-size", "16"], "too small"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--epochs", "-1"], "--epochs cannot be negative"),
    (["--regen-every", "0"], "--regen-every must be at least 1"),
    (["--variants", "0"], "--variants must be at least 1"),
    (["--cracks", "2"], "--cracks must lie in [0, 1]"),
    (["--border", "-1"], "--border must lie in [0, 1]"),
    (["--blob-area", "0"], "--blob-area must lie in [0.02, 1]"),
    (["--seg-width", "4"], "--seg-width must lie in [8, 512]"),
    (["--warmup", "1"], "--warmup is a share of the steps, in [0, 1)"),
    (["--trunk-lr", "0"], "--trunk-lr is a factor on --lr, in (0, 10]"),
    (["--trunk-lr", "11"], "--trunk-lr is a factor on --lr, in (0, 10]"),
    (["--map-weight", "1.5"], "--map-weight is the per-pixel head's share of the joined map, in [0, 1]"),
    (["--map-weight", "0.25", "--map", "seg"], "--map-weight weighs --map both's two maps; --map seg makes one"),
    (["--map-weight", "auto", "--map", "seg"], "--map-weight weighs --map both's two maps; --map seg makes one"),
    (["--map-weight", "heavy"], "--map-weight is the per-pixel head's share of the joined map, in [0, 1], or auto"),
    (["--weights", "/no/such/file.pt"], "no such file"),
])
def test_bad_flags_give_one_clear_line(tiles, tmp_path, args, message, monkeypatch):
    # The "no CUDA" case must hold on every machine, GPU ones included: hide the GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = run(["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "32", *args], ok=False)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("score:\n  embedding: mean\n", "unknown embedding 'mean' (pooled|pooled+peak)"),
    ("synth:\n  blob_sizes: normal\n", "unknown blob size law 'normal' (uniform|log)"),
    ("score:\n  threshold_rule: max\n", "unknown threshold rule 'max' (predictive|tail|quantile)"),
])
def test_an_unknown_choice_in_a_config_file_is_one_clear_line(tiles, tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    res = run(["train", str(tiles), "--out", str(tmp_path / "r"), "--config", str(cfg)], ok=False)
    assert res.exit_code != 0 and message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_data_folder(tmp_path):
    res = run(["train", str(tmp_path / "none"), "--out", str(tmp_path / "r")], ok=False)
    assert res.exit_code != 0 and "not found" in res.output and "Traceback" not in res.output


def test_unknown_choice_is_rejected_by_click(tiles, tmp_path):
    res = run(["train", str(tiles), "--out", str(tmp_path / "r"), "--backend", "opencl"], ok=False)
    assert res.exit_code == 2 and "opencl" in res.output


@pytest.mark.parametrize("content", [b"not a checkpoint at all", "foreign"])
def test_eval_rejects_foreign_checkpoints(tiles, tmp_path, content):
    run_dir = tmp_path / "foreign"
    run_dir.mkdir()
    if content == "foreign":
        torch.save({"state_dict": {}, "epoch": 3}, run_dir / "model.pt")
    else:
        (run_dir / "model.pt").write_bytes(content)
    res = run(["eval", str(run_dir), str(tiles), "--device", "cpu"], ok=False)
    assert res.exit_code != 0 and "not" in res.output and "sslad checkpoint" in res.output
    assert "Traceback" not in res.output


def test_eval_without_checkpoint(tiles, tmp_path):
    res = run(["eval", str(tmp_path), str(tiles)], ok=False)
    assert res.exit_code != 0 and "no checkpoint" in res.output


def test_bad_config_file(tiles, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    res = run(["train", str(tiles), "--out", str(tmp_path / "r"), "--config", str(bad)], ok=False)
    assert res.exit_code != 0 and "epochz" in res.output


def test_dali_backend_missing_is_one_line(tiles, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # import of DALI now fails
    for name in [m for m in sys.modules if m.startswith("sslad.dali_pipes")]:
        monkeypatch.delitem(sys.modules, name)
    res = run(["preview", str(tiles), "--out", str(tmp_path / "pv"), "--backend", "dali", "--image-size", "32",
               "--device", "cpu"], ok=False)
    assert res.exit_code != 0 and "pip install 'sslad[dali]'" in res.output


def test_version_and_help_do_not_import_heavy_modules():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from sslad.cli import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules, 'nvidia.dali' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    from sslad import __version__  # python -m sslad is the console script

    out = subprocess.run([sys.executable, "-m", "sslad", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


