"""The MVTec AD folder layout: ``train/good``, ``test/<type>``, ``ground_truth/<type>/<name>_mask.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslad.data.io import list_images, read_images, read_mask
from sslad.errors import SsladError
from sslad.labels import GOOD


def resolve_category(path: str | Path, category: str | None) -> Path:
    """The category folder: ``path`` itself, or ``path/category`` when a category is given."""
    root = Path(path)
    if not root.exists():
        raise SsladError(f"data folder not found: {root}")
    if not root.is_dir():
        raise SsladError(f"data path is not a folder: {root}")
    if category is None:
        if (root / "train").is_dir():
            return root
        subs = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
        hint = f"; pass --category (one of: {', '.join(subs)})" if subs else ""
        raise SsladError(f"{root} has no train/good folder (expected the MVTec AD layout){hint}")
    folder = root / category
    if not folder.is_dir():
        subs = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
        known = f" (known: {', '.join(subs)})" if subs else ""
        raise SsladError(f"unknown category {category!r} in {root}{known}")
    return folder


def scan(folder: Path) -> dict:
    """List the files of a category folder without decoding them."""
    train_dir = folder / "train" / GOOD
    if not train_dir.is_dir():
        raise SsladError(f"missing folder {train_dir} (expected the MVTec AD layout)")
    train = list_images(train_dir)
    if not train:
        raise SsladError(f"no images in {train_dir}")
    test: list[tuple[Path, str, Path | None]] = []
    test_dir = folder / "test"
    if test_dir.is_dir():
        for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            for img in list_images(type_dir):
                mask = None
                if type_dir.name != GOOD:
                    cand = folder / "ground_truth" / type_dir.name / f"{img.stem}_mask.png"
                    mask = cand if cand.is_file() else None
                test.append((img, type_dir.name, mask))
    return {"train": train, "test": test}


def load_mvtec(folder: Path, size: int, splits: tuple[str, ...] = ("train", "test")) -> dict:
    """Decode a category folder into arrays (see :func:`sslad.data.load_dataset`)."""
    listing = scan(folder)
    out: dict = {"train_paths": [str(p) for p in listing["train"]]}
    if "train" in splits:
        out["train"], _ = read_images(listing["train"], size, desc="decode train")  # strict: training data
    test = listing["test"]
    if test and "test" in splits:
        out["test"], errors = read_images([t[0] for t in test], size, desc="decode test", skip_unreadable=True)
        out["skipped"] = [(str(test[i][0]), reason) for i, reason in errors]
        bad = {i for i, _ in errors}
        test = [t for i, t in enumerate(test) if i not in bad]
        out["test_paths"] = [str(t[0]) for t in test]
        out["test_types"] = [t[1] for t in test]
        has_masks = any(t[2] is not None for t in test)
        if has_masks:
            masks = np.zeros((len(test), size, size), dtype=np.uint8)
            for i, (_, _, m) in enumerate(test):
                if m is not None:
                    masks[i] = read_mask(m, size)
            out["test_masks"] = masks
    return out
