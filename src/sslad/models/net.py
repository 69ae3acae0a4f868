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
    seg_head: bool = True  # a per-pixel head (anomaly maps)
    seg_width: int = 64  # the light head's width; the U-Net decoder's widths scale from it
    decoder: str = "unet"  # unet: skips from the stem and layer1-4 back to 1/2 resolution; light: layer1-3 at 1/4

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_dims"] = list(self.head_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        return cls(arch=str(d["arch"]), head_dims=tuple(int(x) for x in d["head_dims"]),
                   num_classes=int(d["num_classes"]), seg_head=bool(d.get("seg_head", False)),
                   seg_width=int(d.get("seg_width", 64)), decoder=str(d.get("decoder", "light")))  # light: 0.1


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


def patch_descriptors(maps: list[torch.Tensor]) -> torch.Tensor:
    """(N, C1 + C2 + ..., h, w) at the first map's grid: the maps upsampled to it, concatenated and 3x3
    average-pooled (each location described with its neighbourhood, as PatchCore aggregates)."""
    hw = maps[0].shape[-2:]
    z = torch.cat([maps[0]] + [F.interpolate(m, size=hw, mode="bilinear", align_corners=False) for m in maps[1:]], 1)
    return F.avg_pool2d(z.float(), 3, stride=1, padding=1, count_include_pad=False)


#: The trunk stages whose maps :class:`PatchLevels` holds (layer2 at 1/8, layer3 at 1/16, layer4 at 1/32).
PATCH_STAGES = (2, 3, 4)


class PatchLevels:
    """One batch's trunk maps at :data:`PATCH_STAGES` (what ``dense_outputs`` returns beside the embeddings and
    the per-pixel logits), from which each consumer makes the patch descriptors of the stages it uses: the
    ``pooled+peak`` embedding layer2-3's, the patch density's maps those of ``score.map_layers``. Each set of
    stages is made once per batch (:func:`patch_descriptors`)."""

    def __init__(self, maps: list[torch.Tensor]):
        if len(maps) != len(PATCH_STAGES):
            raise ValueError(f"expected {len(PATCH_STAGES)} maps (layer2-4), got {len(maps)}")
        self.maps = list(maps)
        self._made: dict[tuple[int, ...], torch.Tensor] = {}

    def descriptors(self, stages: tuple[int, ...]) -> torch.Tensor:
        """float32 (N, C, h, w) descriptors of ``stages`` (ascending, within :data:`PATCH_STAGES`) at the first
        one's grid."""
        stages = tuple(stages)
        if stages not in self._made:
            self._made[stages] = patch_descriptors([self.maps[k - PATCH_STAGES[0]] for k in stages])
        return self._made[stages]


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU: the decoder's unit."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNetDecoder(nn.Module):
    """A U-Net decoder over the trunk: from layer4 (1/32) up through layer3, 2, 1 (1/16 .. 1/4) and the stem
    (1/2), each step upsampling x2, concatenating the skip and applying a conv block; one logit per
    location at half the input resolution. Widths shrink with the resolution to keep it cheap on a CPU
    (DRAEM's discriminative network is a full U-Net; this one reuses the trunk as its encoder)."""

    def __init__(self, skips: tuple[int, ...], deep: int, width: int = 64):
        super().__init__()
        widths = (2 * width, 2 * width, width, width // 2, width // 2)  # after layer3, 2, 1, stem; the last extra
        self.blocks = nn.ModuleList()
        cin = deep
        for skip, cout in zip(reversed(skips), widths, strict=False):
            self.blocks.append(_conv_block(cin + skip, cout))
            cin = cout
        self.out = nn.Conv2d(cin, 1, 1)

    def forward(self, deep: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        z = deep
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            z = dense_grad(F.interpolate(z, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            z = block(torch.cat([z, skip], dim=1))
        return self.out(z)


def dense_grad(z: torch.Tensor) -> torch.Tensor:
    """``z`` itself; in training on a CPU, the gradient that reaches it is made dense in ``z``'s own layout first.
    The gradient of a tensor concatenated along channels is a channel slice of the concatenation's: strided, which
    sends the CPU's bilinear-upsampling backward down a generic path (about 4x slower, the same numbers; measured
    in docs/results.md, *A dense gradient for the decoder's upsampling*). GPUs are left as measured before it."""
    if z.requires_grad and z.device.type == "cpu":
        layout = torch.channels_last if z.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        z.register_hook(lambda g: g.contiguous(memory_format=layout))
    return z


def training_layout(model: nn.Module) -> nn.Module:
    """``model`` (in place) channels-last, the layout the pretext training and a distillation's student train in:
    oneDNN's and cuDNN's fast path for convolutions, in bf16 and in fp32 alike (an fp32 training step on a CPU
    without native bf16 1.1-1.25x as fast as in torch's default layout, the same losses to rounding;
    docs/results.md, *fp32 training channels-last*)."""
    return model.to(memory_format=torch.channels_last)


def inference_layout(model: nn.Module) -> nn.Module:
    """``model`` (in place) in the memory layout its inference is fastest in: channels-last on a CPU, where oneDNN's
    convolutions take it directly (fp32 all the same: the same scores to rounding, a run's scoring about 1.4x faster,
    docs/results.md, *Channels-last inference on the CPU*); left as it is on a GPU. Every scoring path, in training
    and after loading a run, puts its network in this layout, so training's scores are what eval recomputes."""
    weight = next(model.parameters(), None)
    if weight is not None and weight.device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


class PretextNet(nn.Module):
    """ResNet trunk -> MLP projection head (Linear + BN + ReLU) -> linear 3-way classifier, and a
    per-pixel head: a U-Net decoder (:class:`UNetDecoder`) or the light :class:`SegHead` over layer1-3.

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
            if cfg.decoder == "unet":
                self.seg = UNetDecoder((self.trunk.conv1.out_channels, *widths), dim, cfg.seg_width)
            elif cfg.decoder == "light":
                self.seg = SegHead(widths, cfg.seg_width)
            else:
                raise ValueError(f"unknown decoder {cfg.decoder!r}")
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.embed_dim = dim

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        if self.trunk.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(pooled trunk features (N, D), [stem (1/2), layer1, layer2, layer3, layer4] feature maps)."""
        t = self.trunk
        s = t.relu(t.bn1(t.conv1(self.normalize(x))))
        l1 = t.layer1(t.maxpool(s))
        l2 = t.layer2(l1)
        l3 = t.layer3(l2)
        l4 = t.layer4(l3)
        return torch.flatten(t.avgpool(l4), 1), [s, l1, l2, l3, l4]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features (N, D) of uint8/float 0..255 images (N, 3, H, W)."""
        return self.features(x)[0]

    def dense_outputs(self, x: torch.Tensor, seg: bool = True) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                        PatchLevels]:
        """(embeddings (N, D), per-pixel logits or None, the layer2-4 maps as :class:`PatchLevels`) in one pass:
        what the patch descriptors a per-location density scores are made of. Without ``seg`` the per-pixel head
        is not run (its logits None): embeddings and trunk maps alone."""
        e, feats = self.features(x)
        return e, self.seg_logits(feats) if seg else None, PatchLevels(feats[2:5])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(class logits (N, 3), embeddings (N, D), per-pixel logits (N, 1, H/2, W/2) for the U-Net decoder,
        (N, 1, H/4, W/4) for the light head, or None)."""
        e, feats = self.features(x)
        return self.classifier(self.head(e)), e, self.seg_logits(feats)

    def seg_logits(self, feats: list[torch.Tensor]) -> torch.Tensor | None:
        """Per-pixel logits from :meth:`features`' maps (the U-Net decoder takes them all, the light head
        layer1-3), or None without a per-pixel head."""
        if not self.cfg.seg_head:
            return None
        return self.seg(feats[4], feats[:4]) if self.cfg.decoder == "unet" else self.seg(feats[1:4])
