"""Feature + exception: the downstream transfer (``sslad distill``) into an equal or smaller student."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import sslad
from helpers import assert_onnx_export_matches
from sslad.cli import cli

SHORT = ["--epochs", "4", "--device", "cpu", "--seed", "3"]


def distil(teacher, out, *args):
    res = CliRunner().invoke(cli, ["distill", str(teacher), "--out", str(out), *SHORT, *args])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def pair(tiles, tmp_path_factory):
    """(teacher run, its student): ``sslad train ... --student mobilenet_v3_small``, the transfer as a final stage."""
    from conftest import TINY

    out = tmp_path_factory.mktemp("pair") / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), *TINY, "--student", "mobilenet_v3_small"])
    assert res.exit_code == 0, res.output
    assert "student run folder" in res.output
    import json

    m, t = (json.loads((d / "metrics.json").read_text()) for d in (out / "student", out))
    line = next(x for x in res.output.splitlines() if x.startswith("against the teacher:"))
    assert line.startswith(f"against the teacher: image AUROC {100 * m['image_auroc']:.1f} "
                           f"({100 * (m['image_auroc'] - t['image_auroc']):+.1f}), pixel AUROC")
    return out, out / "student"


@pytest.fixture(scope="module")
def student(pair):
    return pair[1]


@pytest.fixture(scope="module")
def teacher(pair):
    return pair[0]


def test_student_learns_the_teachers_features(student, teacher, tiles):
    """Fails if distillation does not learn: on the training images the distilled student's feature distance to
    the teacher is well below that of the same student untrained."""
    from sslad.data import load_dataset
    from sslad.distill import feature_distance, load_teacher, teacher_features
    from sslad.models import StudentConfig, StudentNet

    teacher, _ = load_teacher(teacher, torch.device("cpu"))
    trained = sslad.load(student).model
    fresh = StudentNet(StudentConfig(arch="mobilenet_v3_small")).eval()
    x = load_dataset(str(tiles), None, 32, splits=("train",)).train.images
    t, _ = teacher_features(teacher, x)
    with torch.no_grad():
        err = [float(torch.stack([d.mean() for d in feature_distance(m.distill_features(x)[0], t)]).mean())
               for m in (trained, fresh)]
    assert err[0] < 0.8 * err[1], err


def test_discrepancy_is_higher_inside_a_planted_defect(student, teacher, tiles):
    from sslad.data import load_dataset
    from sslad.distill import discrepancy_maps, load_teacher

    teacher, _ = load_teacher(teacher, torch.device("cpu"))
    test = load_dataset(str(tiles), None, 32, splits=("test",)).test
    bad = [i for i, t in enumerate(test.types) if t != "good"]
    maps = discrepancy_maps(sslad.load(student).model, teacher, test.images[bad], 32)
    masks = test.masks[bad].bool()
    higher = [float(m[k].mean()) > float(m[~k].mean()) for m, k in zip(maps, masks, strict=True)]
    assert sum(higher) >= 5, higher


def test_a_student_run_works_with_every_command(student, tiles, tmp_path):
    import json

    m = json.loads((student / "metrics.json").read_text())
    assert m["student"] == "mobilenet_v3_small" and m["teacher_image_auroc"] is not None
    assert m["parameters"] < 2_000_000 and "discrepancy_pixel_auroc" in m
    ck = torch.load(student / "model.pt", weights_only=True)
    assert ck["model_args"]["kind"] == "student" and ck["extra"]["teacher"]["path"]
    for args in (["eval", student, tiles, "--out", tmp_path / "ev"],
                 ["predict", student, tiles / "test" / "blob", "--out", tmp_path / "p.csv", "--maps"]):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "maps").glob("*.png"))) == 6


def test_student_export_matches_predict(student, tiles, tmp_path):
    # MobileNetV3's fused hard-swish and squeeze-excite differ from torch's float32 sums by ~1e-7 (embedding) to
    # 1e-6 (per-pixel logits); the tiny student's embedding barely varies between images after 4 epochs at
    # 32 px, and the density over it magnifies those differences to a few 1e-3 of the score range
    assert_onnx_export_matches(student, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "s.onnx",
                               rtol=1e-2, map_atol=1e-4)


@pytest.fixture(scope="module")
def default_student(teacher, tmp_path_factory):
    """A student with every default (resnet10_slim, started from the teacher, standardised loss)."""
    return distil(teacher, tmp_path_factory.mktemp("default") / "run", "--min-steps", "20")


def test_distillation_is_reproducible_bit_for_bit(default_student, teacher, tmp_path):
    """Twice the same distillation, the second through the Python API: the same weights and scores."""
    b = sslad.train_student(teacher, tmp_path / "b", {"epochs": 4, "device": "cpu", "seed": 3, "min_steps": 20})
    assert b == tmp_path / "b"
    sa, sb = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (default_student, b))
    assert sa.keys() == sb.keys() and "trunk.stages.3.0.conv2.weight" in sa and "target_std3" in sa
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    assert (default_student / "scores.csv").read_bytes() == (b / "scores.csv").read_bytes()


def test_default_student_export_matches_predict(default_student, tiles, tmp_path):
    assert_onnx_export_matches(default_student, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "d.onnx")


@pytest.mark.parametrize("command, case, message", [
    ("distill", "other size", "takes 32 px images, not --image-size 64"),
    ("distill", "corrupt", "not a readable sslad checkpoint"),
    ("distill", "student teacher", "holds a student"),
    ("finetune", "corrupt", "not a readable sslad checkpoint"),
    ("finetune", "student teacher", "holds a student"),
])
def test_bad_teachers_are_one_line(command, case, message, teacher, student, tmp_path):
    extra = []
    if case == "other size":
        extra = ["--image-size", "64"]
    elif case == "corrupt":
        teacher = tmp_path / "broken"
        teacher.mkdir()
        (teacher / "model.pt").write_bytes(b"not a checkpoint")
    else:
        teacher = student
    res = CliRunner().invoke(cli, [command, str(teacher), "--out", str(tmp_path / "o"), "--device", "cpu", *extra])
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "o").exists()


def test_student_archs_are_the_configs_choices():
    from sslad.config import STUDENT_ARCHS
    from sslad.models.student import STUDENT_ARCHS as BUILT

    assert BUILT == STUDENT_ARCHS


@pytest.fixture(scope="module")
def discrepancy_run(teacher, tmp_path_factory):
    """A student run whose map is the student-teacher discrepancy (``--map distill``)."""
    return distil(teacher, tmp_path_factory.mktemp("disc") / "run", "--arch", "resnet10", "--map", "distill",
                  "--min-steps", "20")


def test_map_distill_makes_the_discrepancy_the_runs_map(discrepancy_run, teacher, tiles, tmp_path):
    import json

    m = json.loads((discrepancy_run / "metrics.json").read_text())
    assert m["map_chosen"] == "distill"
    # the run's own maps are the discrepancy maps distill measures beside them (same pixel AUROC and AUPRO)
    assert m["pixel_auroc"] == pytest.approx(m["discrepancy_pixel_auroc"], abs=1e-6)
    assert m["aupro"] == pytest.approx(m["discrepancy_aupro"], abs=1e-6)
    ck = torch.load(discrepancy_run / "model.pt", weights_only=True)
    assert ck["model_args"]["kind"] == "pair" and ck["model_args"]["student"]["arch"] == "resnet10"
    det = sslad.load(discrepancy_run, "cpu")
    t = sslad.load(teacher, "cpu")
    x = t.score(sorted((tiles / "test" / "blob").glob("*.png"))).images
    with torch.no_grad():  # the embedding (hence the density) is the teacher's own
        torch.testing.assert_close(det.model.embed(x), t.model.embed(x))
    res = CliRunner().invoke(cli, ["predict", str(discrepancy_run), str(tiles / "test" / "blob"),
                                   "--out", str(tmp_path / "p.csv"), "--maps"])
    assert res.exit_code == 0, res.output


def test_map_distill_export_matches_predict(discrepancy_run, tiles, tmp_path):
    assert_onnx_export_matches(discrepancy_run, sorted((tiles / "test" / "blob").glob("*.png")), tmp_path / "d.onnx")


def test_map_auto_keeps_the_source_that_scores_synthetic_anomalies_better(teacher, tmp_path):
    import json

    from sslad.config import ScoreConfig

    run = distil(teacher, tmp_path / "auto", "--arch", "resnet10", "--map", "auto", "--min-steps", "20")
    m = json.loads((run / "metrics.json").read_text())
    syn = m["map_synthetic_auroc"]
    assert set(syn) == {"seg", "distill"} and all(v is not None for v in syn.values())
    want = "distill" if syn["distill"] > syn["seg"] + ScoreConfig.auto_margin else "seg"
    assert m["map_chosen"] == want
    kind = torch.load(run / "model.pt", weights_only=True)["model_args"]["kind"]
    assert kind == {"seg": "student", "distill": "pair"}[want]


def test_an_equal_student_from_the_teacher_starts_as_the_teacher(teacher, tiles):
    """``--init teacher`` with the teacher's own trunk copies every trunk tensor and makes the standardising
    adapters the identity: the student's maps are the teacher's (zero loss at step 0); a resnet10 student takes
    the stem and first blocks (its first map, stem + layer1's first block, is not the teacher's layer1, which
    has a second block, but its stem is)."""
    from sslad.data import load_dataset
    from sslad.distill import load_teacher, standardized_distance, target_stats, teacher_features
    from sslad.models import StudentConfig, StudentNet

    t, _ = load_teacher(teacher, torch.device("cpu"))
    x = load_dataset(str(tiles), None, 32, splits=("train",)).train.images
    t_feats, _ = teacher_features(t, x)
    stats = target_stats(t, x)
    for (mean, std), f in zip(stats, t_feats, strict=True):  # the stats are the maps' own
        torch.testing.assert_close(mean.flatten(), f.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
        raw = f.std((0, 2, 3), correction=0)
        torch.testing.assert_close(std.flatten(), raw.clamp_min(0.01 * float(raw.median())), rtol=1e-3, atol=1e-5)
    channels = tuple(f.shape[1] for f in t_feats)
    equal = StudentNet(StudentConfig(arch="resnet18", teacher_channels=channels, standardize=True)).eval()
    equal.set_target_stats(stats)
    assert equal.copy_teacher_trunk(t.trunk) == len(equal.trunk.state_dict())
    with torch.no_grad():
        s_feats, _ = equal.distill_features(x)
    for d in standardized_distance(s_feats, t_feats, stats):
        assert float(d.max()) < 1e-6
    small = StudentNet(StudentConfig(arch="resnet10", teacher_channels=channels, standardize=True)).eval()
    small.set_target_stats(stats)
    assert 0 < small.copy_teacher_trunk(t.trunk) < len(equal.trunk.state_dict())
    torch.testing.assert_close(small.trunk.stages[0][0].weight, t.trunk.conv1.weight)
    torch.testing.assert_close(small.trunk.stages[3][0].conv2.weight, t.trunk.layer4[0].conv2.weight)
    slim = StudentNet(StudentConfig(arch="resnet10_slim", teacher_channels=channels, standardize=True)).eval()
    slim.set_target_stats(stats)
    assert slim.copy_teacher_trunk(t.trunk) == len(small.trunk.state_dict())  # layer4: the leading 256 channels
    torch.testing.assert_close(slim.trunk.stages[3][0].conv2.weight, t.trunk.layer4[0].conv2.weight[:256, :256])
    with torch.no_grad():  # the first 256 teacher channels start as identity through the adapter, the rest at z=0
        z = slim.adapters[3](torch.ones(1, 256, 1, 1)).flatten()
    std = stats[3][1].flatten()
    torch.testing.assert_close(z[:256] * std[:256] + stats[3][0].flatten()[:256], torch.ones(256))
    torch.testing.assert_close(z[256:], torch.zeros(256))
    mobile = StudentNet(StudentConfig(arch="mobilenet_v3_small", teacher_channels=channels))
    assert mobile.copy_teacher_trunk(t.trunk) == 0


def test_students_before_standardisation_still_load():
    """A student checkpoint written before ``standardize`` existed (no key, no buffers) rebuilds and loads."""
    from sslad.models import StudentConfig, StudentNet
    from sslad.models.student import build_network

    old = StudentNet(StudentConfig(arch="mobilenet_v3_small"))
    args = old.cfg.to_dict()
    del args["standardize"]
    net = build_network(args)
    net.load_state_dict(old.state_dict())
    assert not net.cfg.standardize and net.target_stats() is None


@pytest.mark.parametrize("loss, init", [("cosine", "scratch"), ("mse", "scratch")])
def test_the_other_losses_and_inits_learn(loss, init, teacher, tiles, tmp_path):
    """Both losses and both starts distil into a run folder whose metrics name them."""
    import json

    run = distil(teacher, tmp_path / "o", "--arch", "resnet10", "--min-steps", "6", "--epochs", "1",
                 "--loss", loss, "--init", init)
    m = json.loads((run / "metrics.json").read_text())
    assert m["distill_loss_kind"] == loss and (m["tensors_from_teacher"] == 0) == (init == "scratch")
    ck = torch.load(run / "model.pt", weights_only=True)
    assert ck["model_args"]["standardize"] == (loss == "mse")


@pytest.mark.parametrize("mode", ["map", "embedding"])
def test_a_student_scores_images_as_its_teacher(mode, teacher, tmp_path):
    """The student keeps the image-score mode its teacher's scorer uses instead of choosing again on synthetic
    anomalies its own head learned from (one teacher copy per mode: without the rule both students would
    choose alike)."""
    import json
    import shutil

    from sslad.scoring import Scorer

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    ck = torch.load(copy / "model.pt", weights_only=True)
    ck["scorer"]["image_score"] = mode
    torch.save(ck, copy / "model.pt")
    run = distil(copy, tmp_path / "s", "--min-steps", "6", "--epochs", "1")
    assert Scorer.from_state(torch.load(run / "model.pt", weights_only=True)["scorer"]).image_score == mode
    assert json.loads((run / "metrics.json").read_text())["image_score_chosen"] == mode


def test_against_teacher_says_what_the_transfer_was_worth():
    from sslad.distill import against_teacher

    student, teacher = {"image_auroc": 0.94, "pixel_auroc": None, "aupro": 0.5}, {"image_auroc": 0.928, "aupro": 0.6}
    line = against_teacher(student, teacher)
    assert line == "against the teacher: image AUROC 94.0 (+1.2), AUPRO 50.0 (-10.0)"
    assert against_teacher({"image_auroc": None}, {}).endswith("no AUROC to compare (no labelled test split)")


@pytest.mark.parametrize("kind", ["student", "pair"])
def test_a_pass_that_makes_no_map_leaves_the_per_pixel_output_out(kind):
    """``dense_outputs(seg=False)``, what the fit images' embedding pass asks for: the same embedding and trunk maps,
    no per-pixel output, and the part that makes it (the student's head; the pair's student) not run."""
    from sslad.models import NetConfig, PretextNet
    from sslad.models.pair import DiscrepancyNet
    from sslad.models.student import StudentConfig, StudentNet

    torch.manual_seed(0)
    student = StudentNet(StudentConfig()).eval()
    net = student if kind == "student" else DiscrepancyNet(PretextNet(NetConfig()).eval(), student)
    ran = []
    (student.seg if kind == "student" else student.trunk).register_forward_hook(lambda *_: ran.append(1))
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8).float()
    with torch.no_grad():
        full = net.dense_outputs(x)
        assert ran and full[1] is not None
        ran.clear()
        bare = net.dense_outputs(x, seg=False)
    assert not ran and bare[1] is None
    torch.testing.assert_close(bare[0], full[0], rtol=0, atol=0)
    torch.testing.assert_close(bare[2].descriptors((2, 3)), full[2].descriptors((2, 3)), rtol=0, atol=0)
