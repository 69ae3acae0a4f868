"""The student network of the downstream transfer: an equal or smaller torchvision trunk that learns to
reproduce the pretext network's (the teacher's) multi-scale features and per-pixel output. No I/O.

It answers like :class:`~sslad.models.net.PretextNet` (``forward`` -> (logits, embedding, per-pixel
logits); ``embed``; ``cfg.seg_head``), so the scorer, the detector, ``predict`` and ``export`` treat a
student run as any run; ``distill_features`` adds what distillation compares: the student's maps at
1/4, 1/8 and 1/16 of the input, projected (1x1 conv) to the teacher's channels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from sslad.models.net import MEAN, STD, PatchLevels, SegHead

#: Student trunks, built without downloads, and their channels at strides 4, 8, 16, 32: the teacher's own
#: (equal), a ResNet with one block per stage (about half the weights), the same with a 256-channel last stage
#: (about a fifth: layer4 holds three quarters of a ResNet-18's weights), MobileNetV3-Small (about a twelfth).
TAP_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet10": (64, 128, 256, 512),
                "resnet10_slim": (64, 128, 256, 256), "mobilenet_v3_small": (16, 24, 48, 576)}
STUDENT_ARCHS = tuple(TAP_CHANNELS)  # == sslad.config.STUDENT_ARCHS (checked by a test)


@dataclass(frozen=True)
class StudentConfig:
    """Architecture arguments, stored in checkpoints (``model_args``, ``kind: student``) to rebuild it."""

    arch: str = "resnet10"
    teacher_channels: tuple[int, ...] = (64, 128, 256, 512)  # the teacher's layer1-4
    seg_width: int = 32
    seg_head: bool = True  # mimics the teacher's per-pixel probabilities (maps without the teacher)
    standardize: bool = False  # adapters predict the teacher's maps standardised per channel (target_mean/std)
    kind: str = "student"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["teacher_channels"] = list(self.teacher_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        return cls(arch=str(d["arch"]), teacher_channels=tuple(int(c) for c in d["teacher_channels"]),
                   seg_width=int(d["seg_width"]), seg_head=bool(d["seg_head"]),
                   standardize=bool(d.get("standardize", False)))  # absent in students before 0.4


class _Taps(nn.Module):
    """A torchvision trunk cut into stages: outputs at strides 4, 8, 16 and 32."""

    def __init__(self, arch: str):
        super().__init__()
        from torchvision import models
        from torchvision.models.resnet import BasicBlock, ResNet

        if arch in ("resnet18", "resnet10", "resnet10_slim"):
            net = models.resnet18(weights=None) if arch == "resnet18" else ResNet(BasicBlock, [1, 1, 1, 1])
            if arch == "resnet10_slim":
                down = nn.Sequential(nn.Conv2d(256, 256, 1, stride=2, bias=False), nn.BatchNorm2d(256))
                net.layer4 = nn.Sequential(BasicBlock(256, 256, stride=2, downsample=down))
            self.stages = nn.ModuleList([
                nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1), net.layer2, net.layer3,
                net.layer4])
        elif arch == "mobilenet_v3_small":
            f = models.mobilenet_v3_small(weights=None).features
            self.stages = nn.ModuleList([f[:2], f[2:4], f[4:9], f[9:]])
        else:
            raise ValueError(f"unknown student arch {arch!r} ({'|'.join(STUDENT_ARCHS)})")
        self.channels = TAP_CHANNELS[arch]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


class StudentNet(nn.Module):
    """Trunk taps -> 1x1 adapters to the teacher's layer1-4 channels; the pooled adapted deepest tap is the
    embedding (it learns the teacher's, so the density behaves like the teacher's); a light per-pixel head
    over the first three taps.

    With ``cfg.standardize`` the adapters predict the teacher's maps standardised per channel (the teacher's
    mean and standard deviation over the pretext set, buffers ``target_mean{k}``/``target_std{k}``
    set by :meth:`set_target_stats`), as EfficientAD does: every channel's variation weighs in the loss, not
    the large common mean of ReLU features; the maps leave the student in the teacher's units."""

    def __init__(self, cfg: StudentConfig = StudentConfig()):
        super().__init__()
        self.cfg = cfg
        self.trunk = _Taps(cfg.arch)
        self.adapters = nn.ModuleList(nn.Conv2d(c, t, 1) for c, t in zip(self.trunk.channels,
                                                                          cfg.teacher_channels, strict=True))
        if cfg.seg_head:
            self.seg = SegHead(self.trunk.channels[:3], cfg.seg_width)
        self.embed_dim = cfg.teacher_channels[3]
        if cfg.standardize:
            for k, c in enumerate(cfg.teacher_channels):
                self.register_buffer(f"target_mean{k}", torch.zeros(1, c, 1, 1))
                self.register_buffer(f"target_std{k}", torch.ones(1, c, 1, 1))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk((x.float() - self.mean) / self.std)

    def target_stats(self) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Per teacher map, its (mean, std) of shape (1, C, 1, 1), or None without ``cfg.standardize``."""
        if not self.cfg.standardize:
            return None
        return [(getattr(self, f"target_mean{k}"), getattr(self, f"target_std{k}"))
                for k in range(len(self.adapters))]

    @torch.no_grad()
    def set_target_stats(self, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for (mean, std), (m, s) in zip(self.target_stats(), stats, strict=True):
            mean.copy_(m.view_as(mean))
            std.copy_(s.view_as(std))

    def _adapt(self, k: int, tap: torch.Tensor) -> torch.Tensor:
        z = self.adapters[k](tap)
        if self.cfg.standardize:  # in float: a bf16 z times std plus a large mean would lose the variation
            z = z.float() * getattr(self, f"target_std{k}") + getattr(self, f"target_mean{k}")
        return z

    @torch.no_grad()
    def copy_teacher_trunk(self, trunk: nn.Module) -> int:
        """Start from the teacher's own weights where the architectures share them (DistilBERT's initialisation):
        a ResNet student takes the teacher's stem and, in every stage, its first blocks (a narrower stage the
        leading channels of them); adapters start as the identity on the channels student and teacher share and
        predict the teacher's mean on the others (in standardised units with ``cfg.standardize``). Returns the
        number of tensors copied (0 for MobileNet: nothing is shared)."""
        if not self.cfg.arch.startswith("resnet"):
            return 0
        source = trunk.state_dict()
        names = {"stages.0.0.": "conv1.", "stages.0.1.": "bn1.", "stages.0.4.": "layer1.", "stages.1.": "layer2.",
                 "stages.2.": "layer3.", "stages.3.": "layer4."}
        copied = 0
        for name, value in self.trunk.state_dict().items():
            prefix = next((p for p in names if name.startswith(p)), None)
            src = None if prefix is None else source.get(names[prefix] + name[len(prefix):])
            fits = src is not None and src.dim() == value.dim() and \
                all(a <= b for a, b in zip(value.shape, src.shape, strict=True))
            if fits:
                value.copy_(src[tuple(slice(0, n) for n in value.shape)] if value.dim() else src)
                copied += 1
        stats = self.target_stats()
        for k, adapter in enumerate(self.adapters):
            t, c = adapter.weight.shape[:2]
            n = min(t, c)
            mean, std = (torch.zeros(t), torch.ones(t)) if stats is None else \
                (stats[k][0].flatten().cpu(), stats[k][1].flatten().cpu())
            weight, bias = torch.zeros(t, c), torch.zeros(t)  # z = 0: the teacher's mean
            weight[:n, :n] = torch.diag(1 / std[:n])
            bias[:n] = -mean[:n] / std[:n]
            adapter.weight.copy_(weight[:, :, None, None])
            adapter.bias.copy_(bias)
        return copied

    def distill_features(self, x: torch.Tensor, seg: bool = True) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(adapted maps at 1/4, 1/8, 1/16, 1/32 in the teacher's channels and units, per-pixel logits at 1/4
        or None: without a per-pixel head, or without ``seg``, which leaves it out)."""
        taps = self._taps(x)
        adapted = [self._adapt(k, t) for k, t in enumerate(taps)]
        return adapted, (self.seg(taps[:3]) if seg and self.cfg.seg_head else None)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._adapt(3, self._taps(x)[3]).mean((2, 3))

    def dense_outputs(self, x: torch.Tensor, seg: bool = True) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                        PatchLevels]:
        """(embeddings, per-pixel logits or None, the adapted 1/8, 1/16 and 1/32 maps as :class:`PatchLevels`):
        as the teacher's (without ``seg`` the per-pixel head is not run)."""
        adapted, logits = self.distill_features(x, seg)
        return adapted[3].mean((2, 3)), logits, PatchLevels(adapted[1:4])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(no class logits: an empty (N, 0) tensor, embeddings (N, D), per-pixel logits (N, 1, H/4, W/4))."""
        taps = self._taps(x)
        seg = self.seg(taps[:3]) if self.cfg.seg_head else None
        emb = self._adapt(3, taps[3]).mean((2, 3))
        return emb.new_zeros((emb.shape[0], 0)), emb, seg


def build_network(model_args: dict) -> nn.Module:
    """The network a checkpoint's ``model_args`` describe: a student, a teacher-student pair, or the pretext
    network."""
    from sslad.models.net import NetConfig, PretextNet

    if model_args.get("kind") == "student":
        return StudentNet(StudentConfig.from_dict(model_args))
    if model_args.get("kind") == "pair":
        from sslad.models.pair import DiscrepancyNet

        return DiscrepancyNet.from_dict(model_args)
    return PretextNet(NetConfig.from_dict(model_args))
