"""The pretext network: ResNet trunk, projection head, 3-way classifier, per-pixel head. No I/O.

Nothing here knows the data, the pretext task or the scorer: the network maps images to class
logits, a global embedding and a per-pixel logit map; the training glue chooses the losses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: ImageNet statistics: the input normalisation, also when training from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class NetConfig:
    """Architecture arguments, stored in checkpoints to rebuild the network."""

    arch: str = "resnet18"
    head_dims: tuple[int, ...] = (512, 512, 128)
    num_classes: int = 3
    seg_head: bool = True  # the per-pixel head over layer1-3 (anomaly maps)
    seg_width: int = 64

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_dims"] = list(self.head_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        return cls(arch=str(d["arch"]), head_dims=tuple(int(x) for x in d["head_dims"]),
                   num_classes=int(d["num_classes"]), seg_head=bool(d.get("seg_head", False)),
                   seg_width=int(d.get("seg_width", 64)))


def _trunk(arch: str) -> tuple[nn.Module, int]:
    from torchvision import models

    if arch == "resnet18":
        net = models.resnet18(weights=None)
    elif arch == "resnet50":
        net = models.resnet50(weights=None)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


class SegHead(nn.Module):
    """A light per-pixel head: 1x1 projections of layer1-3, summed at layer1's resolution (1/4),
    a 3x3 conv, then one logit per location."""

    def __init__(self, in_channels: tuple[int, ...], width: int = 64):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, width, 1, bias=False) for c in in_channels)
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        z = self.proj[0](feats[0])
        for proj, f in zip(self.proj[1:], feats[1:], strict=True):
            z = z + F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
        return self.fuse(z)


class PretextNet(nn.Module):
    """ResNet trunk -> MLP projection head (Linear + BN + ReLU) -> linear 3-way classifier, and a
    per-pixel head (:class:`SegHead`) over the trunk's layer1-3.

    ``embed()`` returns the trunk's pooled features, the representation the density model is
    fitted on (as in the CutPaste paper). Inputs are uint8 or float images in 0..255; the
    network normalises them itself, so callers never forget to.
    """

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        self.cfg = cfg
        self.trunk, dim = _trunk(cfg.arch)
        layers: list[nn.Module] = []
        last = dim
        for width in cfg.head_dims[:-1]:
            layers += [nn.Linear(last, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            last = width
        layers.append(nn.Linear(last, cfg.head_dims[-1]))
        self.head = nn.Sequential(*layers)
        self.classifier = nn.Linear(cfg.head_dims[-1], cfg.num_classes)
        if cfg.seg_head:
            widths = tuple(getattr(self.trunk, f"layer{i}")[0].conv1.in_channels for i in (2, 3, 4))  # layer1-3 out
            self.seg = SegHead(widths, cfg.seg_width)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.embed_dim = dim

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        if self.trunk.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(pooled trunk features (N, D), [layer1, layer2, layer3] feature maps)."""
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(self.normalize(x)))))
        l1 = t.layer1(x)
        l2 = t.layer2(l1)
        l3 = t.layer3(l2)
        return torch.flatten(t.avgpool(t.layer4(l3)), 1), [l1, l2, l3]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features (N, D) of uint8/float 0..255 images (N, 3, H, W)."""
        return self.features(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(class logits (N, 3), embeddings (N, D), per-pixel logits (N, 1, H/4, W/4) or None)."""
        e, feats = self.features(x)
        seg = self.seg(feats) if self.cfg.seg_head else None
        return self.classifier(self.head(e)), e, seg
