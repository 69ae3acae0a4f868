"""Files: safe reading of torch files given by users, atomic writes, and output paths checked before work."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a second Ctrl-C at any moment leaves either the old file or the new one, never a
    half-written one (and no stray temporary file on a normal exit).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def check_output_file(path: str | Path, flag: str) -> Path:
    """Fail before any work when ``path`` cannot be written: its folder must exist and be writable."""
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise SsladError(f"{flag} {str(path)!r} must be a file path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise SsladError(f"{flag} {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise SsladError(f"{flag} {p}: folder {parent} is not writable")
    existed = p.exists()
    try:  # try it: permissions alone miss read-only file systems and folders like /proc
        with open(p, "a"):
            pass
    except OSError as exc:
        raise SsladError(f"{flag} {p}: cannot write the file ({exc.strerror or exc.__class__.__name__})") from exc
    if not existed:
        p.unlink(missing_ok=True)
    return p


def make_output_dir(path: str | Path, flag: str) -> Path:
    """Create the output folder ``path`` (and parents); one clear line when that is impossible."""
    if str(path).strip() == "":
        raise SsladError(f"{flag} must name a folder (got an empty path)")
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SsladError(f"{flag} {p}: cannot create the folder ({exc.strerror or exc.__class__.__name__})") from exc
    if not os.access(p, os.W_OK):
        raise SsladError(f"{flag} {p}: the folder is not writable")
    return p


@contextmanager
def writing(path: str | Path, flag: str) -> Iterator[None]:
    """Turn an OS error while writing ``path`` (read-only or full disk, a folder where nothing can be
    created) into one clear line naming the flag, instead of a traceback."""
    try:
        yield
    except OSError as exc:
        raise SsladError(f"{flag} {path}: cannot write the file ({exc.strerror or exc.__class__.__name__})") from exc
