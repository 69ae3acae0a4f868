"""The ELPV solar-cell dataset, read from the installed ``elpv-dataset`` package.

2,624 electroluminescence images (300x300, grayscale) of mono- and polycrystalline cells, each
with a defect probability in {0, 1/3, 2/3, 1}. sslad uses the unambiguous ones only:

* probability 0 cells are *good*, probability 1.0 cells are *defective*; the rest is left out;
* split (deterministic, no randomness): the good cells sorted by file name, every 5th goes to
  ``test/good`` and the rest to training; all defective cells go to the test split, typed by
  their cell kind (``mono`` or ``poly``) so per-type AUROC separates the two materials.

Names: ``elpv`` (both kinds), ``elpv:mono``, ``elpv:poly``. Licence: CC BY-NC-SA 4.0 (the data).
"""

from __future__ import annotations

from pathlib import Path

from sslad.data.io import read_images
from sslad.errors import SsladError

KINDS = ("mono", "poly")


def is_elpv(name: str) -> bool:
    return name == "elpv" or name.startswith("elpv:")


def _package_dir() -> Path:
    try:
        import elpv_dataset
    except ImportError as exc:
        raise SsladError(
            "the builtin dataset 'elpv' needs the elpv-dataset package: pip install 'sslad[elpv]'"
        ) from exc
    return Path(elpv_dataset.__file__).parent / "data"


def split_elpv(name: str) -> dict[str, list]:
    """File lists of the deterministic split described in the module docstring."""
    kind = name.split(":", 1)[1] if ":" in name else None
    if kind is not None and kind not in KINDS:
        raise SsladError(f"unknown elpv subset {kind!r} (use elpv, elpv:mono or elpv:poly)")
    root = _package_dir()
    labels = root / "labels.csv"
    if not labels.is_file():
        raise SsladError(f"elpv-dataset is installed but has no labels file at {labels}")
    good, bad = [], []
    for line in labels.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        rel, prob, cell = parts[0], float(parts[1]), parts[2]
        if kind is not None and cell != kind:
            continue
        if prob == 0.0:
            good.append((str(root / rel), cell))
        elif prob == 1.0:
            bad.append((str(root / rel), cell))
    good.sort()
    bad.sort()
    test_good = good[4::5]
    train = [p for i, (p, _) in enumerate(good) if i % 5 != 4]
    test = [(p, "good") for p, _ in test_good] + [(p, c) for p, c in bad]
    return {"train": train, "test": test}


def load_elpv(name: str, size: int, splits: tuple[str, ...] = ("train", "test")) -> dict:
    """Decode the ELPV split into arrays (see :func:`sslad.data.load_dataset`)."""
    split = split_elpv(name)
    out: dict = {"train_paths": split["train"]}
    if "train" in splits:
        out["train"], _ = read_images(split["train"], size, desc="decode train")  # strict: training data
    if "test" in splits:
        paths = [p for p, _ in split["test"]]
        out["test"], errors = read_images(paths, size, desc="decode test", skip_unreadable=True)
        bad = {i for i, _ in errors}
        out["skipped"] = [(paths[i], reason) for i, reason in errors]
        out["test_paths"] = [p for i, (p, _) in enumerate(split["test"]) if i not in bad]
        out["test_types"] = [t for i, (_, t) in enumerate(split["test"]) if i not in bad]
    return out
