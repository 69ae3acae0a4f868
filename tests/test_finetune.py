"""Feature + exception: the equal model fine-tuned on the real good images (``sslad finetune``)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import sslad
from helpers import assert_onnx_export_matches
from sslad.cli import cli

SHORT = ["--epochs", "2", "--min-steps", "6", "--batch-size", "8", "--device", "cpu", "--seed", "3"]


def finetune(teacher, out, *args):
    res = CliRunner().invoke(cli, ["finetune", str(teacher), "--out", str(out), *SHORT, *args])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def tuned(tiny_run, tmp_path_factory):
    return finetune(tiny_run[0], tmp_path_factory.mktemp("ft") / "run", "--lr", "1e-3")


def test_only_the_named_stages_move(tuned, tiny_run):
    """layer3 and layer4 learn; the stem, layer1-2, BatchNorm statistics, heads and decoder stay the teacher's."""
    a = torch.load(tiny_run[0] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tuned / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    assert moved and all(k.startswith(("trunk.layer3.", "trunk.layer4.")) for k in moved), sorted(moved)[:5]
    assert not any("running_" in k for k in moved)
    assert any(k.startswith("trunk.layer3.") for k in moved) and any(k.startswith("trunk.layer4.") for k in moved)


def test_a_finetuned_run_works_with_every_command(tuned, tiny_run, tiles, tmp_path):
    m = json.loads((tuned / "metrics.json").read_text())
    teacher = json.loads((tiny_run[0] / "metrics.json").read_text())
    assert m["teacher_image_auroc"] == teacher["image_auroc"] and m["steps"] >= 6
    assert m["teacher_synthetic_auroc"] == teacher["synthetic_auroc"] and m["synthetic_auroc"]
    ck = torch.load(tuned / "model.pt", weights_only=True)
    assert ck["extra"]["teacher"]["path"] and ck["extra"]["finetune"]["train_from"] == "layer3"
    for args in (["eval", tuned, tiles, "--out", tmp_path / "ev"],
                 ["predict", tuned, tiles / "test" / "blob", "--out", tmp_path / "p.csv", "--maps"],
                 ["distill", tuned, "--out", tmp_path / "st", "--epochs", "1", "--min-steps", "1", "--device", "cpu"]):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "maps").glob("*.png"))) == 6


def test_finetuned_export_matches_predict(tuned, tiles, tmp_path):
    assert_onnx_export_matches(tuned, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "f.onnx")


def test_finetuning_lowers_the_contrastive_loss(tiny_run, tiles, tmp_path):
    """Fails if fine-tuning does not learn: the mean-shifted loss of fixed views of the training images falls."""
    from sslad.config import FinetuneConfig
    from sslad.data import load_dataset
    from sslad.finetune import augment_views, fit_finetune, mean_shifted_loss, normal_center

    model = sslad.load(tiny_run[0]).model
    fit = load_dataset(str(tiles), None, 32, splits=("train",)).train
    center = normal_center(model, fit.images)
    views = [augment_views(fit.images, torch.Generator().manual_seed(s), gray=False) for s in (5, 6)]

    def loss() -> float:
        with torch.no_grad():
            return float(mean_shifted_loss(model.embed(views[0]), model.embed(views[1]), center, 0.25))

    before = loss()
    fit_finetune(model, fit, FinetuneConfig(epochs=1, min_steps=30, lr=1e-3, batch_size=12), gray=False, amp=False,
                 out=tmp_path, log=lambda _m: None)
    assert loss() < 0.9 * before, (before, loss())


def test_mean_shifted_loss_prefers_matching_views():
    """Two views of one image close together, other images apart: low loss; views swapped between images: high."""
    from sslad.finetune import mean_shifted_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    center = torch.nn.functional.normalize(torch.ones(16), dim=0) * 0.1
    matched = mean_shifted_loss(z, z + 0.01 * torch.randn(8, 16, generator=g), center, 0.25)
    swapped = mean_shifted_loss(z, z.roll(1, 0), center, 0.25)
    assert float(matched) < float(swapped) - 1.0
    assert float(mean_shifted_loss(z, z, center, 0.25, angular=1.0)) > float(mean_shifted_loss(z, z, center, 0.25))


def test_views_are_seeded_and_stay_in_range(tiles):
    from sslad.data import load_dataset
    from sslad.finetune import augment_views

    x = load_dataset(str(tiles), None, 32, splits=("train",)).train.images
    a, b = (augment_views(x, torch.Generator().manual_seed(1), gray=False) for _ in range(2))
    c = augment_views(x, torch.Generator().manual_seed(2), gray=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.float32 and float(a.min()) >= 0 and float(a.max()) <= 255


def test_finetuning_is_reproducible_bit_for_bit(tiny_run, tmp_path):
    a = finetune(tiny_run[0], tmp_path / "a")
    b = finetune(tiny_run[0], tmp_path / "b")
    sa, sb = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (a, b))
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    assert (a / "scores.csv").read_bytes() == (b / "scores.csv").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--lr", "0"], "--lr must be a positive"),
    (["--batch-size", "1"], "--batch-size must be at least 2"),
    (["--temperature", "-1"], "--temperature must be a positive"),
])
def test_bad_settings_are_one_line(args, message, tiny_run, tmp_path):
    res = CliRunner().invoke(cli, ["finetune", str(tiny_run[0]), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "o").exists()
