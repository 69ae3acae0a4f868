"""Data: a folder (or a builtin name) to uint8 image tensors held once on the training device.

``load_dataset`` is the only entry point the rest of sslad uses. Images of any mode and size
are converted to RGB uint8 and resized to ``image_size`` x ``image_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslad.config import DataConfig
from sslad.data.elpv import is_elpv, load_elpv
from sslad.data.io import IMAGE_EXTENSIONS, list_images, read_image, read_images
from sslad.data.mvtec import load_mvtec, resolve_category
from sslad.errors import SsladError
from sslad.labels import GOOD, UNKNOWN


@dataclass
class ImageSet:
    """Images of one split, decoded once.

    Attributes:
        images: uint8 ``(N, 3, S, S)`` on the device they will be used on.
        paths: source file of each image.
        types: ``"good"`` or the defect type of each image.
        masks: uint8 ``(N, S, S)`` of 0/1 ground truth, or ``None`` when the data has none.
    """

    images: torch.Tensor
    paths: list[str]
    types: list[str]
    masks: torch.Tensor | None = None

    def subset(self, index) -> ImageSet:
        """The images at ``index`` (an int array), in that order."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return ImageSet(self.images[idx.to(self.images.device)], [self.paths[i] for i in idx.tolist()],
                        [self.types[i] for i in idx.tolist()], None if self.masks is None else self.masks[idx])

    @property
    def labels(self) -> np.ndarray:
        """1 for anomalous, 0 for good."""
        return np.array([t != GOOD for t in self.types], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class AnomalyDataset:
    name: str
    train: ImageSet
    test: ImageSet | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable test images: (path, reason)


def _to_tensor(arr: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(device)


def load_dataset(
    path: str, category: str | None = None, image_size: int = DataConfig.image_size, device: torch.device | str = "cpu",
    splits: tuple[str, ...] = ("train", "test"),
) -> AnomalyDataset:
    """Load an MVTec-layout folder (or ``elpv``, ``elpv:mono``, ``elpv:poly``).

    Args:
        path: a category folder, a root holding categories (with ``category``), or a builtin name.
        category: sub-folder of ``path`` to use.
        image_size: side of the square images after resizing.
        device: where the training images live (the training device); test images stay on the CPU
            and travel to the model batch by batch.
        splits: which splits to decode (``eval`` needs only ``test``; an undecoded train split
            keeps its paths and holds an empty image tensor).
    """
    if is_elpv(path) and not Path(path).is_dir():
        name = path if category is None or ":" in path else f"{path}:{category}"  # elpv --category mono
        raw = load_elpv(name, image_size, splits)
    else:
        folder = resolve_category(path, category)
        raw = load_mvtec(folder, image_size, splits)
        name = folder.name
    train_images = raw["train"] if "train" in raw else np.zeros((0, image_size, image_size, 3), np.uint8)
    train = ImageSet(_to_tensor(train_images, device), raw["train_paths"], [GOOD] * len(raw["train_paths"]))
    test = None
    if "test" in splits and "test" in raw:
        masks = raw.get("test_masks")
        test = ImageSet(
            _to_tensor(raw["test"], "cpu"), raw["test_paths"], raw["test_types"],
            None if masks is None else torch.from_numpy(masks),
        )
    return AnomalyDataset(name=name, train=train, test=test, skipped=raw.get("skipped", []))


def holdout_split(n: int, fraction: float, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (fit indices, held-out indices) of ``n`` training images in file-name order.

    ``max(ceil(fraction * n), minimum)`` images, at most a quarter of them, evenly spaced over the
    sorted names, are held out of training and of the scorer fit (they set the thresholds);
    fewer than 2 means none (the thresholds then come from the fit set).
    """
    k = min(max(math.ceil(fraction * n), minimum), n // 4) if fraction > 0 else 0
    if k < 2:
        return np.arange(n), np.arange(0)
    hold = np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)
    return np.setdiff1d(np.arange(n), hold), hold


def split_train(train: ImageSet, fraction: float, minimum: int) -> tuple[ImageSet, ImageSet | None]:
    """(images to train and fit on, held-out images or None): :func:`holdout_split` applied."""
    fit_idx, hold_idx = holdout_split(len(train), fraction, minimum)
    return train.subset(fit_idx), (train.subset(hold_idx) if len(hold_idx) else None)


def load_files(files: Sequence[str | Path], image_size: int, device: torch.device | str = "cpu",
               require_any: bool = True) -> tuple[ImageSet, list[tuple[str, str]]]:
    """Every readable image of ``files`` (types unknown), and the unreadable ones as ``(path, reason)``;
    an error only when none could be read (with ``require_any``; else an empty set: one chunk of many)."""
    if not files:
        raise SsladError("no images to score")
    arr, errors = read_images(files, image_size, desc="decode", skip_unreadable=True)
    if require_any and len(errors) == len(files):
        raise SsladError(f"none of the {len(files)} images could be read (first: {errors[0][1]})")
    bad = {i for i, _ in errors}
    ok = [str(f) for i, f in enumerate(files) if i not in bad]
    return ImageSet(_to_tensor(arr, device), ok, [UNKNOWN] * len(ok)), [(str(files[i]), r) for i, r in errors]


def list_folder(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder`` (for ``sslad predict``), sorted by name."""
    p = Path(folder)
    if not p.is_dir():
        raise SsladError(f"folder not found: {p}")
    files = list_images(p)
    if not files:
        raise SsladError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {p}")
    return files


def list_inputs(path: str | Path) -> list[Path]:
    """What ``sslad predict`` scores: every image directly in a folder, or one image file."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise SsladError(f"not an image file ({', '.join(IMAGE_EXTENSIONS)}): {p}")
        return [p]
    if not p.exists():
        raise SsladError(f"no folder or image file at {p}")
    return list_folder(p)


def load_folder(folder: str | Path, image_size: int, device: torch.device | str = "cpu"
                ) -> tuple[ImageSet, list[tuple[str, str]]]:
    """:func:`load_files` of every image directly in ``folder``."""
    return load_files(list_folder(folder), image_size, device)


__all__ = [
    "AnomalyDataset", "ImageSet", "holdout_split", "list_folder", "list_inputs", "load_dataset", "load_files",
    "load_folder",
    "read_image",
    "read_images",
    "split_train",
]
