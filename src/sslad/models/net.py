"""The pretext network: ResNet trunk, projection head, 3-way classifier, ``embed()``. No I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_dims"] = list(self.head_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        return cls(arch=str(d["arch"]), head_dims=tuple(int(x) for x in d["head_dims"]),
                   num_classes=int(d["num_classes"]))


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


class PretextNet(nn.Module):
    """ResNet trunk -> MLP projection head (Linear + BN + ReLU) -> linear 3-way classifier.

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
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.embed_dim = dim

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features (N, D) of uint8/float 0..255 images (N, 3, H, W)."""
        x = self.normalize(x)
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits (N, 3), embeddings (N, D))."""
        e = self.embed(x)
        return self.classifier(self.head(e)), e
