"""Safe reading of torch files given by users: one clear line when missing or unreadable."""

from __future__ import annotations

from pathlib import Path

import torch

from sslad.errors import SsladError


def load_torch_file(path: Path, what: str):
    """``torch.load(path, weights_only=True)`` on the CPU; ``what`` names the file in errors."""
    if not path.is_file():
        raise SsladError(f"{what}: no such file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip or version errors: all one line for the user
        raise SsladError(f"{what}: cannot read {path} ({exc.__class__.__name__})") from exc
