"""Feature + exception: configuration round trip, network shapes, and trunk weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sslad.config import RunConfig, load_yaml, save_yaml
from sslad.errors import SsladError
from sslad.models import NetConfig, PretextNet, load_trunk_weights


def test_config_yaml_round_trip_and_override(tmp_path):
    cfg = RunConfig().override(data={"path": "x", "image_size": 64}, train={"epochs": 3, "lr": None})
    assert cfg.data.image_size == 64 and cfg.train.epochs == 3 and cfg.train.lr is None
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml") == cfg


RECIPES = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_shipped_recipe_loads_and_validates(recipe):
    # a misspelt key or an impossible value in configs/ would reach a user as an error at `sslad train`
    cfg = load_yaml(recipe).validate()
    assert cfg.train.epochs >= 1


def test_the_long_tiles_recipe_is_the_tiles_recipe_with_twice_the_steps():
    root = Path(__file__).resolve().parent.parent / "configs"
    base, long = load_yaml(root / "cpu-tiles.yaml"), load_yaml(root / "cpu-tiles-long.yaml")
    assert long.train.min_steps >= 2 * base.train.min_steps
    assert long.override(train={"min_steps": base.train.min_steps}) == base


@pytest.mark.parametrize("text, msg", [
    ("nope: {}\n", "unknown config section"),
    ("train: {epochz: 1}\n", "epochz"),
    ("- a\n- b\n", "mapping"),
    ("train: [unclosed\n", "not valid YAML"),
])
def test_bad_config_files(tmp_path, text, msg):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(SsladError, match=msg):
        load_yaml(tmp_path / "c.yaml")


def test_validate_rejects_impossible_settings():
    with pytest.raises(SsladError, match="too small"):
        RunConfig().override(data={"image_size": 8}).validate()
    with pytest.raises(SsladError, match="batch-size"):
        RunConfig().override(train={"batch_size": 2}).validate()


@pytest.mark.parametrize("decoder, hw", [("unet", (24, 16)), ("light", (12, 8))])
def test_network_shapes_and_embed(decoder, hw):
    """The U-Net decoder maps at half the input's resolution, the light head at a quarter; any aspect."""
    net = PretextNet(NetConfig(decoder=decoder)).eval()
    x = torch.randint(0, 256, (2, 3, 48, 32), dtype=torch.uint8)
    logits, emb, seg = net(x)
    assert logits.shape == (2, 3) and emb.shape == (2, 512) and seg.shape == (2, 1, *hw)
    assert torch.allclose(net.embed(x), emb)


def test_weights_from_a_local_state_dict(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    net = PretextNet(NetConfig())
    assert load_trunk_weights(net, str(tmp_path / "r18.pth")) == str(tmp_path / "r18.pth")
    assert torch.equal(net.trunk.conv1.weight, ref.conv1.weight)
    assert load_trunk_weights(net, "none") == "from scratch"


def test_weights_that_do_not_fit_are_rejected(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(SsladError, match="does not fit"):
        load_trunk_weights(PretextNet(NetConfig()), str(tmp_path / "bad.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(SsladError, match="cannot read"):
        load_trunk_weights(PretextNet(NetConfig()), str(tmp_path / "junk.pth"))


def test_imagenet_offline_is_one_clear_line(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(self, *a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(type(ResNet18_Weights.DEFAULT), "get_state_dict", offline)
    with pytest.raises(SsladError, match="cannot download ImageNet weights.*--weights PATH"):
        load_trunk_weights(PretextNet(NetConfig()), "imagenet")


def test_warmup_ramps_to_lr_then_one_cosine_and_trunk_lr_scales_the_trunk_alone():
    import math

    from sslad.training import cosine_lr, make_optimizer, set_cosine_lr

    assert [cosine_lr(1.0, s, 10) for s in range(11)] == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(11)])  # no warm-up: the plain cosine
    lrs = [cosine_lr(1.0, s, 10, warmup=0.3) for s in range(11)]  # 3 ramp steps, then the cosine over 7
    assert lrs[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0]) and lrs[-1] == 0
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))
    model = PretextNet(NetConfig(seg_head=True, decoder="light"))
    opt = make_optimizer(RunConfig().override(train={"lr": 1e-3, "trunk_lr": 0.1}), model)
    trunk, rest = opt.param_groups
    assert {id(q) for q in trunk["params"]} == {id(q) for q in model.trunk.parameters()}
    assert len(trunk["params"]) + len(rest["params"]) == len(list(model.parameters()))
    base = set_cosine_lr(opt, 1e-3, 4, 10)
    assert rest["lr"] == pytest.approx(base) and trunk["lr"] == pytest.approx(0.1 * base)
    fast = make_optimizer(RunConfig().override(train={"lr": 1e-3, "trunk_lr": 2.0}), model)  # a faster trunk too
    base = set_cosine_lr(fast, 1e-3, 2, 10)
    assert [g["lr"] for g in fast.param_groups] == pytest.approx([2 * base, base])
    assert len(make_optimizer(RunConfig().override(train={"lr": 1e-3}), model).param_groups) == 1


@pytest.mark.parametrize("trunk_norm", ["batch", "frozen"])
def test_frozen_trunk_norm_keeps_the_first_statistics_while_scale_and_shift_learn(trunk_norm):
    from sslad.training import make_optimizer, train_mode, train_step

    torch.manual_seed(0)
    model = PretextNet(NetConfig(seg_head=True, decoder="light"))
    norms = [m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    first = [(m.running_mean.clone(), m.running_var.clone(), m.weight.detach().clone()) for m in norms]
    opt = make_optimizer(RunConfig().override(train={"lr": 1e-2}), model)
    train_mode(model, model, trunk_norm)
    xb = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    train_step(model, opt, xb, torch.tensor([0, 1, 2, 0]), torch.zeros(4, 32, 32), amp=False)
    kept = [torch.equal(m.running_mean, mu) and torch.equal(m.running_var, var)
            for m, (mu, var, _) in zip(norms, first, strict=True)]
    assert all(kept) if trunk_norm == "frozen" else not any(kept)
    assert not any(torch.equal(m.weight, w) for m, (_, _, w) in zip(norms, first, strict=True))  # scale, shift learn
    assert model.head.training  # the heads are in training mode either way


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_decoders_dense_gradient_changes_no_number(monkeypatch, channels_last):
    """The U-Net decoder makes the gradient reaching each upsampling dense (a speed fix on CPUs): every parameter's
    gradient must be what the plain graph gives."""
    import sslad.models.net as net_module

    torch.manual_seed(0)
    net = PretextNet(NetConfig(seg_width=16))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (4, 3, 64, 48), dtype=torch.uint8)
    target = (torch.rand(4, 1, 32, 24) > 0.9).float()

    def grads() -> list[torch.Tensor]:
        net.zero_grad(set_to_none=True)
        _, _, seg = net(x)
        F.binary_cross_entropy_with_logits(seg, target).backward()
        return [p.grad.clone() for p in net.seg.parameters()] + [net.trunk.conv1.weight.grad.clone()]

    hooked = grads()
    monkeypatch.setattr(net_module, "dense_grad", lambda z: z)
    plain = grads()
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(hooked, plain, strict=True))
    assert any(g.abs().sum() > 0 for g in hooked)


def test_fp32_training_runs_channels_last_with_the_contiguous_steps_losses():
    """Training lays the network out channels-last in fp32 too (a speed fix for CPUs without native bf16, where
    auto trains fp32): the same steps from the same weights give the contiguous network's losses, the first (the
    forward pass) to fp32 rounding, the later ones within Adam's amplification of it (its first steps are about lr
    per weight whatever the gradient's size)."""
    from sslad.models import training_layout
    from sslad.training import train_step

    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y, m = torch.arange(6) % 3, (torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.9).byte()
    losses = []
    for layout in (training_layout, lambda net: net):
        torch.manual_seed(0)
        net = layout(PretextNet(NetConfig(seg_width=16)))
        opt = torch.optim.Adam(net.parameters(), 3e-4)
        losses.append(torch.stack([train_step(net, opt, x, y, m, False)[0] for _ in range(3)]))
        assert net.trunk.conv1.weight.is_contiguous(memory_format=torch.channels_last) == (len(losses) == 1)
    assert not torch.equal(losses[0], losses[0].roll(1))  # the losses move: three real steps
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=1e-5, atol=0)
    torch.testing.assert_close(losses[0], losses[1], rtol=5e-3, atol=0)


def test_scoring_runs_channels_last_on_the_cpu_with_the_same_outputs(tiny_run):
    """Every scoring path puts the network in one layout, channels-last on a CPU (oneDNN's fast path; a speed fix):
    a loaded run is in it, and its outputs are the contiguous network's to fp32 rounding."""
    from sslad.checkpoint import load_checkpoint
    from sslad.models import inference_layout

    model, _, _ = load_checkpoint(tiny_run[0], "cpu")
    conv = model.trunk.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        fast = model.dense_outputs(x)
        plain = model.to(memory_format=torch.contiguous_format).dense_outputs(x)
        assert inference_layout(model) is model and model.trunk.conv1.weight.is_contiguous(
            memory_format=torch.channels_last)
    for a, b in zip([*fast[:2], *fast[2].maps], [*plain[:2], *plain[2].maps], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_run_scored_in_bf16_stores_it_and_scores_within_a_few_per_cent_of_fp32(tiny_run, tiles):
    """``--inference-precision bf16``: the scorer is fitted on the network's bf16 outputs and stores the precision,
    so a reloaded run (eval, predict) scores exactly as its fit did; its scores are fp32's within a few per cent but
    not equal to them (the network really ran in bf16). A scorer from before 0.7.10 stored none: fp32 on a CPU."""
    import numpy as np

    from sslad.checkpoint import load_checkpoint
    from sslad.data import load_dataset, split_train
    from sslad.detector import Detector
    from sslad.scoring import Scorer
    from sslad.training import fit_scorer

    model, _, ckpt = load_checkpoint(tiny_run[0], "cpu")
    cfg = RunConfig.from_dict(ckpt["config"])
    assert cfg.score.inference_precision == "fp32"  # the default: the exported graph's exact scores
    data = load_dataset(str(tiles), None, 32)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    scorers = {p: fit_scorer(model, fit, holdout, cfg.override(score={"inference_precision": p}))
               for p in ("fp32", "bf16")}
    assert {p: s.precision for p, s in scorers.items()} == {"fp32": "fp32", "bf16": "bf16"}
    x = data.test.images.numpy()
    scores = {p: Detector(model, s, 32).score(x).scores for p, s in scorers.items()}
    assert not np.array_equal(scores["bf16"], scores["fp32"])
    np.testing.assert_allclose(scores["bf16"], scores["fp32"], rtol=0.05, atol=0.02 * np.abs(scores["fp32"]).max())
    reloaded = Scorer.from_state(scorers["bf16"].state_dict())
    assert reloaded.precision == "bf16"
    np.testing.assert_array_equal(Detector(model, reloaded, 32).score(x).scores, scores["bf16"])
    legacy = scorers["fp32"].state_dict()
    del legacy["precision"]
    assert Scorer.from_state(legacy).precision is None
    np.testing.assert_array_equal(Detector(model, Scorer.from_state(legacy), 32).score(x).scores, scores["fp32"])
    with pytest.raises(SsladError, match="unknown inference precision"):
        cfg.override(score={"inference_precision": "fp16"}).validate()
