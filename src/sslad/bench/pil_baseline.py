"""The conventional CutPaste pipeline, for benchmarks: per-image PIL work in a torch DataLoader.

A faithful re-statement of what popular PyTorch CutPaste re-implementations do per training
image (e.g. the widely used ``pytorch-cutpaste``): whole-image ``ColorJitter(0.1, 0.1, 0.1, 0.1)``
and ``Resize``, then *3-way* CutPaste on PIL images — a cut-paste copy (``crop``, jittered patch,
``paste``) and a CutPaste-Scar (thin ``crop``, jitter, RGBA ``rotate(expand=True)``, ``paste`` with
the alpha mask) — then ``ToTensor`` + ``Normalize`` of all three outputs, with ``--workers``
DataLoader processes. Scar sizes are scaled with the image side like sslad's, so both produce
the same classes at the same size.
"""

from __future__ import annotations

import math
import random

import torch
from PIL import Image

from sslad.models.net import MEAN, STD
from sslad.synth.plan import CUTPASTE_AREA, CUTPASTE_ASPECT, SCAR_LENGTH_256, SCAR_WIDTH_256


class PilCutPaste3Way(torch.utils.data.Dataset):
    """Dataset over in-memory PIL images yielding (good, cut-paste, scar) normalised tensors."""

    def __init__(self, images: list[Image.Image], size: int, jitter: float = 0.1, seed: int = 0):
        from torchvision import transforms

        self.images = images
        self.size = size
        self.seed = seed
        self.whole = transforms.Compose([
            transforms.ColorJitter(jitter, jitter, jitter, jitter), transforms.Resize((size, size)),
        ])
        self.patch_jitter = transforms.ColorJitter(jitter, jitter, jitter, jitter)
        self.after = transforms.Compose([
            transforms.ToTensor(),
            transforms.Normalize(mean=list(MEAN), std=list(STD)),
        ])
        k = size / 256.0
        self.scar_w = (max(1.0, SCAR_WIDTH_256[0] * k), max(1.0, SCAR_WIDTH_256[1] * k))
        self.scar_h = (max(2.0, SCAR_LENGTH_256[0] * k), max(2.0, SCAR_LENGTH_256[1] * k))

    def __len__(self) -> int:
        return len(self.images)

    def _cutpaste(self, img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        area = rng.uniform(*CUTPASTE_AREA) * w * h
        aspect = math.exp(rng.uniform(math.log(CUTPASTE_ASPECT[0]), math.log(CUTPASTE_ASPECT[1])))
        cw = max(1, min(w - 1, int(round(math.sqrt(area * aspect)))))
        ch = max(1, min(h - 1, int(round(math.sqrt(area / aspect)))))
        fx, fy = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
        patch = self.patch_jitter(img.crop((fx, fy, fx + cw, fy + ch)))
        tx, ty = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
        out = img.copy()
        out.paste(patch, (tx, ty, tx + cw, ty + ch))
        return out

    def _scar(self, img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        cw, ch = rng.uniform(*self.scar_w), rng.uniform(*self.scar_h)
        fx, fy = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
        patch = self.patch_jitter(img.crop((fx, fy, int(fx + cw), int(fy + ch))))
        patch = patch.convert("RGBA").rotate(rng.uniform(-45, 45), expand=True)
        tx = int(rng.uniform(0, max(0, w - patch.size[0])))
        ty = int(rng.uniform(0, max(0, h - patch.size[1])))
        out = img.copy()
        out.paste(patch.convert("RGB"), (tx, ty), mask=patch.split()[-1])
        return out

    def __getitem__(self, i: int):
        rng = random.Random(self.seed * 1_000_003 + i)
        img = self.whole(self.images[i])
        return self.after(img), self.after(self._cutpaste(img, rng)), self.after(self._scar(img, rng))


def pil_loader(images: list[Image.Image], size: int, batch_size: int, workers: int, seed: int = 0):
    """The DataLoader a conventional training script iterates once per epoch."""
    ds = PilCutPaste3Way(images, size, seed=seed)
    return torch.utils.data.DataLoader(ds, batch_size=max(1, batch_size // 3), shuffle=True,
                                       num_workers=workers, drop_last=False)
