"""Exception + feature: interrupted runs resume to the same bits, bad input is one line, --overwrite starts clean."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from helpers import auroc_of_scores_csv
from sslad.cli import cli

ENV = {**os.environ, "SSLAD_NO_PROGRESS": "1", "OMP_NUM_THREADS": "2"}


def train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sslad.cli", "train", str(data), "--out", str(out), "--image-size", "32",
            "--epochs", "6", "--batch-size", "12", "--variants", "3", "--device", "cpu", "--seed", "5", *extra]


def progress(state: Path) -> dict | None:
    try:
        return torch.load(state, weights_only=True)["progress"]
    except (OSError, RuntimeError, EOFError, KeyError):
        return None


def start_and_wait(cmd: list[str], state: Path, epochs: int = 2) -> subprocess.Popen:
    """Start a training and return once ``epochs`` epochs are logged in metrics.csv (cheap to poll; the
    training state of the epoch before is then on disk)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = state.parent / "metrics.csv"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) > epochs:  # header + one row per epoch
            return proc
        assert proc.poll() is None, f"training ended before it could be interrupted: {proc.communicate()[1][-800:]}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("training made no progress")


@pytest.fixture(scope="module")
def reference(tiles, tmp_path_factory) -> Path:
    """An uninterrupted run: what every interrupted-and-resumed run must equal."""
    out = tmp_path_factory.mktemp("ref") / "run"
    res = subprocess.run(train_cmd(tiles, out), env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (out / "train_state.pt").exists()  # a finished run keeps model.pt only
    return out


def assert_same_run(a: Path, b: Path) -> None:
    sa, sb = (torch.load(d / "model.pt", weights_only=True) for d in (a, b))
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), f"weights differ: {k}"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("image_auroc", "pixel_auroc", "aupro", "threshold", "pretext_loss", "pretext_accuracy", "steps"):
        assert ma[key] == mb[key], key
    assert (a / "scores.csv").read_bytes() == (b / "scores.csv").read_bytes()


def test_sigkill_then_resume_gives_the_same_bits(tiles, tmp_path, reference):
    out = tmp_path / "killed"
    proc = start_and_wait(train_cmd(tiles, out), out / "train_state.pt")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.pt").exists()
    again = subprocess.run(train_cmd(tiles, out), env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "unfinished run" in again.stderr and "--resume" in again.stderr
    res = subprocess.run(train_cmd(tiles, out, "--resume"), env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming at epoch" in res.stderr
    assert_same_run(reference, out)


def torchrun_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    """Two CPU processes (gloo) under torchrun, each in its own share of every regeneration."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    return [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "sslad.cli", "train", str(data), "--out",
            str(out), "--image-size", "32", "--epochs", "4", "--batch-size", "12", "--variants", "2", "--device",
            "cpu", "--seed", "5", *extra]


DDP_ENV = {**ENV, "OMP_NUM_THREADS": "1"}


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant at once (torchrun starts its workers in sessions of their own, so
    killing its process group would leave them running): a machine losing power, as far as the run can tell."""
    tree, frontier = [pid], [pid]
    while frontier:
        kids = []
        for p in frontier:
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    kids += [int(c) for c in (task / "children").read_text().split()]
                except OSError:
                    pass
        tree, frontier = tree + kids, kids
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_torchrun_run_killed_and_resumed_equals_an_uninterrupted_one(tiles, tmp_path):
    """Multi-process training goes through torchrun (DDP, gloo on the CPU), each rank on its share of the samples,
    and rank 0 writes the run. Every rank loads the training state and takes the same steps: SIGKILL to the whole
    torchrun process group mid-run, then ``--resume`` under torchrun, ends with the uninterrupted run's weights and
    metrics. Resuming it with another number of processes is refused with one line before any work."""
    ref = tmp_path / "ref"
    res = subprocess.run(torchrun_cmd(tiles, ref), env=DDP_ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((ref / "metrics.json").read_text())
    # 9 train images x 3 classes x 2 variants: 27 samples per rank, 6 a step: 4 steps an epoch, 4 epochs
    assert m["world_size"] == 2 and m["steps"] == 4 * 4
    assert m["image_auroc"] == pytest.approx(auroc_of_scores_csv(ref / "scores.csv"), abs=1e-6)
    out = tmp_path / "killed"
    proc = subprocess.Popen(torchrun_cmd(tiles, out), env=DDP_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    log, deadline = out / "metrics.csv", time.monotonic() + 600
    while not (log.is_file() and len(log.read_text().splitlines()) > 2) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.02)
    kill_tree(proc.pid)  # torchrun and both workers, with no chance to save
    proc.wait()
    time.sleep(0.5)
    assert not (out / "model.pt").exists() and (out / "train_state.pt").is_file()
    single = subprocess.run(train_cmd(tiles, out, "--resume"), env=ENV, capture_output=True, text=True, timeout=120)
    assert single.returncode != 0 and "trained by 2 process(es), this is 1" in single.stderr
    assert "Traceback" not in single.stderr
    res = subprocess.run(torchrun_cmd(tiles, out, "--resume"), env=DDP_ENV, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming at epoch" in res.stderr
    assert_same_run(ref, out)


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["sigterm", "double-ctrl-c"])
def test_signal_saves_the_state_and_resume_finishes(tiles, tmp_path, reference, signals):
    out = tmp_path / "stopped"
    proc = start_and_wait(train_cmd(tiles, out), out / "train_state.pt", epochs=1)
    for s in signals:
        proc.send_signal(s)
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    assert "the training state is saved" in err.strip().splitlines()[-1]
    assert progress(out / "train_state.pt")["step"] > 0
    assert not list(out.glob(".*.tmp")) and not (out / "model.pt").exists()  # nothing half-written
    res = subprocess.run(train_cmd(tiles, out, "--resume"), env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert_same_run(reference, out)


def test_resume_without_an_unfinished_run(tiles, tmp_path, reference):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(reference), "--resume"])
    assert res.exit_code == 1 and "nothing to resume" in res.output
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 1 and "nothing to resume" in res.output and not (tmp_path / "none").exists()


def test_resume_scores_a_run_whose_scoring_was_cut(tiles, tmp_path, reference):
    """Stopped after model.pt was saved, while it scored the test split (a time limit, a kill): --resume scores it,
    and metrics.json (the training's summary included, kept in model.pt) and scores.csv are the uninterrupted run's."""
    out = tmp_path / "cut"
    shutil.copytree(reference, out)
    for name in ("metrics.json", "scores.csv", "report.png"):
        (out / name).unlink()
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output[-2000:]
    assert "scoring its test split" in res.output and (out / "report.png").is_file()
    assert_same_run(reference, out)
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--resume"])  # now it is finished
    assert res.exit_code == 1 and "nothing to resume" in res.output


def test_overwrite_removes_what_sslad_wrote_and_only_that(tiles, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    exports = ("model.onnx", "model.onnx.json", "model.onnx.data", "model.torchscript.pt", "model.torchscript.pt.json")
    for name in ("model.pt", "scores.csv", "scores.png", "predictions.csv", "metrics.json", *exports):
        (out / name).write_text("stale")
    (out / "eval").mkdir()
    (out / "eval" / "metrics.json").write_text("stale")
    (out / "maps").mkdir()
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), "--image-size", "32", "--epochs", "0",
                                   "--device", "cpu", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert not (out / "eval").exists() and not (out / "maps").exists() and not (out / "predictions.csv").exists()
    assert not any((out / name).exists() for name in exports)  # no export of the old model survives
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "scores.csv").read_text() != "stale" and json.loads((out / "metrics.json").read_text())["epochs"] == 0


# --- every user mistake is one line ------------------------------------------------------------------------------


@pytest.fixture
def finished(tiny_run) -> Path:
    return tiny_run[0]


def _nan_weights(ck):
    next(v for v in ck["state_dict"].values() if v.is_floating_point()).fill_(float("nan"))


class Case:
    """What a bad-input case needs: the data folder, a finished run, a scratch folder."""

    def __init__(self, data: Path, run: Path, tmp: Path):
        self.d, self.r, self.p = data, run, tmp

    def train(self, *args):
        return self.train_on(self.d, *args)

    def train_on(self, data, *args):
        return ["train", data, "--out", self.p / "o", "--image-size", "32", *args]

    def loop(self) -> Path:
        (self.p / "loop").symlink_to(self.p / "loop")
        return self.p / "loop"

    def config(self, section: str, body: str) -> Path:
        f = self.p / "c.yaml"
        f.write_text(f"{section}:\n  {body}\n" if body else f"{section}: 3\n")
        return f

    def file(self) -> Path:
        (self.p / "afile").write_text("x")
        return self.p / "afile"

    def crafted(self, change) -> Path:
        ck = torch.load(self.r / "model.pt", weights_only=True)
        change(ck)
        (self.p / "crafted").mkdir()
        torch.save(ck, self.p / "crafted" / "model.pt")
        return self.p / "crafted"

    def other_shapes(self) -> Path:
        from torchvision.models import resnet18

        state = resnet18(weights=None).state_dict()
        state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
        torch.save(state, self.p / "w.pth")
        return self.p / "w.pth"


BAD = {  # name: (message, argv)
    "config image_size 32.5": ("expected a whole number",
                               lambda c: c.train("--config", c.config("data", "image_size: 32.5"))),
    "config image_size 1e3": ("data.image_size", lambda c: c.train("--config", c.config("data", "image_size: 1e3"))),
    "config batch_size 9.5": ("train.batch_size", lambda c: c.train("--config", c.config("train", "batch_size: 9.5"))),
    "config device 5": ("expected text", lambda c: c.train("--config", c.config("train", "device: 5"))),
    "config seed abc": ("train.seed", lambda c: ["preview", c.d, "--out", c.p / "o", "--config",
                                                 c.config("train", "seed: abc")]),
    "config section not a mapping": ("must be a mapping", lambda c: c.train("--config", c.config("train", ""))),
    "image size too large": ("too large", lambda c: c.train("--image-size", "100000")),
    "lr inf": ("positive, finite", lambda c: c.train("--lr", "inf")),
    "out under /proc": ("cannot create", lambda c: ["train", c.d, "--out", "/proc/sslad_x", "--image-size", "32"]),
    "out under a file": ("cannot create", lambda c: ["train", c.d, "--out", c.file() / "x", "--image-size", "32"]),
    "out empty": ("--out must name a run folder", lambda c: ["train", c.d, "--out", "", "--image-size", "32"]),
    "out inside the data": ("inside the data folder", lambda c: ["train", c.d, "--out", c.d / "train" / "good" / "r"]),
    "eval out under a file": ("cannot create", lambda c: ["eval", c.r, c.d, "--out", c.file() / "x"]),
    "preview out under /proc": ("cannot create", lambda c: ["preview", c.d, "--out", "/proc/sslad_x", "--image-size",
                                                            "32"]),
    "predict out in a missing folder": ("does not exist", lambda c: ["predict", c.r, c.d / "test" / "good", "--out",
                                                                     c.p / "no" / "p.csv"]),
    "predict a missing run": ("run folder not found", lambda c: ["predict", c.p / "no-run", c.d / "test" / "good"]),
    "eval a missing run": ("run folder not found", lambda c: ["eval", c.p / "no-run", c.d]),
    "export a missing run": ("run folder not found", lambda c: ["export", c.p / "no-run"]),
    "predict a text file": ("not an image file", lambda c: ["predict", c.r, c.file()]),
    "predict a missing folder": ("no folder or image file", lambda c: ["predict", c.r, c.p / "nothing-here"]),
    "bench json to a missing folder": ("does not exist", lambda c: ["bench", "--backends", "torch", "--json",
                                                                    c.p / "no" / "b.json"]),
    "bench plot to a folder": ("is a directory", lambda c: ["bench", "--backends", "torch", "--plot", c.p]),
    "data folder is a symlink loop": ("cannot be resolved", lambda c: c.train_on(c.loop())),
    "predict out where nothing can be written": ("cannot write the file", lambda c: [
        "predict", c.r, c.d / "test" / "good", "--out", "/proc/sslad_p.csv"]),
    "bench json where nothing can be written": ("cannot write the file", lambda c: [
        "bench", "--backends", "torch", "--json", "/proc/sslad_b.json"]),
    "bench plot where nothing can be written": ("cannot write the file", lambda c: [
        "bench", "--backends", "torch", "--plot", "/proc/sslad_b.png"]),
    "bench image size beyond memory": ("of memory", lambda c: [
        "bench", "--backends", "torch", "--image-size", "4096", "--images", "100000"]),
    "bench image size beyond the limit": ("must lie in", lambda c: ["bench", "--backends", "torch", "--image-size",
                                                                    "100000"]),
    "unknown scorer type": ("not readable", lambda c: ["eval", c.crafted(
        lambda ck: ck["scorer"]["density"].update(type="magic")), c.d]),
    "no preprocessing record": ("incomplete sslad checkpoint", lambda c: ["predict", c.crafted(
        lambda ck: ck.pop("preprocessing")), c.d / "test" / "good"]),
    "non-finite weights": ("non-finite weights", lambda c: ["predict", c.crafted(_nan_weights), c.d / "test" / "good"]),
    "non-finite threshold": ("not finite", lambda c: ["eval", c.crafted(
        lambda ck: ck["scorer"].update(threshold=float("nan"))), c.d]),
    "resume and overwrite": ("exclude each other", lambda c: c.train("--resume", "--overwrite")),
    "weights of another shape": ("other shapes", lambda c: c.train("--weights", c.other_shapes())),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_user_mistakes_are_one_line(name, tiles, finished, tmp_path):
    message, build = BAD[name]
    argv = [str(a) for a in build(Case(tiles, finished, tmp_path))]
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code not in (0, None), res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    # (click's own usage errors add its "Usage:" and "Try ... --help" lines around the one error line)
    lines = [line for line in res.output.strip().splitlines()
             if line.strip() and not line.startswith(("data:", "model:", "Usage:", "Try '"))]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "o").exists()  # a failed start leaves no run folder behind


def test_config_numbers_written_as_text_are_parsed_like_flags(tiles, tmp_path):
    cfgf = tmp_path / "c.yaml"
    cfgf.write_text('train:\n  lr: 1e-3\n  epochs: "0"\n')
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--config", str(cfgf),
                                   "--image-size", "32", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]
    assert saved["lr"] == 1e-3 and saved["epochs"] == 0


def test_run_dir_may_be_given_as_its_model_file(finished, tiles, tmp_path):
    res = CliRunner().invoke(cli, ["eval", str(finished / "model.pt"), str(tiles), "--out", str(tmp_path / "ev"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["predict", str(finished / "model.pt"), str(tiles / "test" / "good"),
                                   "--device", "cpu"])
    assert res.exit_code == 0 and (finished / "predictions.csv").is_file(), res.output


def test_predict_survives_unreadable_files(finished, tiles, tmp_path):
    import csv
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(tiles / "test" / "good", folder)
    (folder / "zero.png").write_bytes(b"")
    res = CliRunner().invoke(cli, ["predict", str(finished), str(folder), "--out", str(tmp_path / "p.csv"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 7 and sum(r["score"] != "" for r in rows) == 6
    bad = [r for r in rows if r["error"]]
    assert [Path(r["path"]).name for r in bad] == ["zero.png"] and "cannot read image" in bad[0]["error"]
    assert "warning: skipped" in res.output and "6 images scored" in res.output and "1 skipped" in res.output
    (folder / "zero.png").unlink()
    for f in folder.iterdir():
        f.write_bytes(b"")
    res = CliRunner().invoke(cli, ["predict", str(finished), str(folder), "--device", "cpu"])
    assert res.exit_code == 1 and "none of the 6 images" in res.output


def test_eval_skips_unreadable_test_images(finished, tiles, tmp_path):
    import shutil

    data = tmp_path / "tiles"
    shutil.copytree(tiles, data)
    (data / "test" / "blob" / "000.png").write_bytes(b"")
    res = CliRunner().invoke(cli, ["eval", str(finished), str(data), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["counts"] == {"blob": 5, "good": 6} and [Path(s["path"]).name for s in m["skipped_images"]] == ["000.png"]
    assert "warning: skipped" in res.output


def test_elpv_takes_its_subset_as_a_category():
    pytest.importorskip("elpv_dataset", reason="elpv-dataset is not installed")
    from sslad.data import load_dataset

    assert load_dataset("elpv", "mono", 32, splits=()).name == "elpv:mono"


def test_diverging_training_stops_with_the_last_good_state(tiles, tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "32",
                                   "--epochs", "2", "--batch-size", "12", "--device", "cpu", "--lr", "1e30"])
    assert res.exit_code == 1 and "diverged" in res.output and "lower --lr" in res.output
    assert not (tmp_path / "r" / "model.pt").exists()


def test_an_exploding_loss_is_never_silent(tiles, tmp_path):
    """--lr 1e6: either the loss turns non-finite (stop) or it explodes (a warning), never a quiet success."""
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(tmp_path / "r"), "--image-size", "32",
                                   "--epochs", "1", "--batch-size", "12", "--device", "cpu", "--lr", "1e6"])
    assert ("diverged" in res.output and res.exit_code == 1) or "is diverging" in res.output, res.output
