"""Image decoding: any PIL-readable file to an RGB uint8 array of a fixed size."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sslad.errors import SsladError

#: Extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic order)."""
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, I;16, I, F, CMYK…) to 8-bit RGB.

    High-bit-depth images are rescaled by their type's range (not by their own maximum), so a
    dark 16-bit image stays dark; alpha is dropped (composited on black would invent content).
    """
    if img.mode in ("RGB",):
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if img.mode == "F":
            arr = np.clip(arr, 0.0, 1.0 if arr.max() <= 1.0 else 255.0)
            scale = 255.0 if arr.max() <= 1.0 else 1.0
            arr8 = np.round(arr * scale).astype(np.uint8)
        else:
            arr = arr.astype(np.int64)
            top = 65535 if arr.max() > 255 or img.mode.startswith("I;16") else 255
            arr8 = np.round(np.clip(arr, 0, top) * (255.0 / top)).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        return img.convert("RGB")
    return img.convert("RGB")


def _upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it: a camera's EXIF orientation tag applied (a phone photo taken
    sideways, a JPEG from a line camera mounted on its side), so images, masks and the overlays drawn
    on them all share the orientation the user sees (OpenCV's ``imread`` does the same)."""
    return ImageOps.exif_transpose(img)


def read_image(path: str | Path, size: int) -> np.ndarray:
    """Decode ``path`` to an ``(size, size, 3)`` uint8 RGB array (upright, bilinear, antialiased)."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _to_rgb8(_upright(img))
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise SsladError(f"image not found: {path}") from exc
    except Image.DecompressionBombError as exc:
        raise SsladError(f"cannot read image {path}: larger than PIL's decompression-bomb limit "
                         f"({Image.MAX_IMAGE_PIXELS} pixels)") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise SsladError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from exc


def read_mask(path: str | Path, size: int) -> np.ndarray:
    """Decode a ground-truth mask to an ``(size, size)`` uint8 array of 0/1 (nearest)."""
    try:
        with Image.open(path) as img:
            img.load()
            m = _upright(img).convert("L").resize((size, size), Image.NEAREST)
            return (np.asarray(m) > 127).astype(np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise SsladError(f"cannot read mask {path}: {exc.__class__.__name__}: {exc}") from exc


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(count: int, size: int, copies: float = 1.0) -> None:
    """Refuse, before decoding, ``count`` images of ``size`` px that would not fit in memory."""
    need = count * 3 * size * size * copies
    have = available_memory()
    if have is not None and need > 0.8 * have:
        raise SsladError(f"{count} images at {size} px need about {need / 2**30:.1f} GiB of memory, "
                         f"{have / 2**30:.1f} GiB are available; lower --image-size")


def read_images(paths: Sequence[str | Path], size: int, desc: str | None = None,
                skip_unreadable: bool = False) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode many images to one ``(N, size, size, 3)`` uint8 array, with a progress bar.

    Strict by default (one unreadable file stops with its name). With ``skip_unreadable`` the
    array holds the readable images only, and the second value lists ``(index, reason)`` of the
    others.
    """
    from sslad.progress import bar

    check_memory(len(paths), size)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    errors: dict[int, str] = {}
    workers = max(1, min(8, os.cpu_count() or 1))

    def _one(i: int) -> None:
        try:
            out[i] = read_image(paths[i], size)
        except SsladError as exc:
            if not skip_unreadable:
                raise
            errors[i] = str(exc)

    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(_one, range(len(paths)))
        for _ in bar(it, desc, total=len(paths), enabled=len(paths) >= 64, unit="img"):
            pass
    bad = sorted(errors)
    if bad:
        out = np.delete(out, bad, axis=0)
    return out, [(i, errors[i]) for i in bad]
