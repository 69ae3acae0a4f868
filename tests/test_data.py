"""Feature + exception: loading every listed image kind, the MVTec layout, elpv, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslad.data import load_dataset, load_folder, read_image
from sslad.errors import SsladError


def _write_kinds(folder):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    gray = rng.integers(0, 256, (30, 50), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "gray.png")
    rgba = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    g16 = (rng.integers(0, 65536, (20, 33))).astype(np.uint16)
    Image.fromarray(g16).save(folder / "deep16.png")
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=95)
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(gray, "L").convert("LA").save(folder / "gray_alpha.png")
    return {"gray": gray, "g16": g16, "rgb": rgb}


def test_every_image_kind_decodes_to_rgb_uint8(tmp_path):
    raw = _write_kinds(tmp_path / "kinds")
    for f in sorted((tmp_path / "kinds").iterdir()):
        arr = read_image(f, 32)
        assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8, f.name
    # Grayscale becomes three equal channels; 16-bit is scaled by its range, not clipped.
    g = read_image(tmp_path / "kinds" / "gray.png", 32)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    d = read_image(tmp_path / "kinds" / "deep16.png", 20)
    expect = np.round(raw["g16"][:, :20].astype(np.float64) * 255 / 65535)
    assert d[..., 0].mean() == pytest.approx(expect.mean(), abs=8)
    assert d.max() > 200  # not clipped to 255 everywhere, not shifted to 0 everywhere
    assert d.min() < 60


def test_same_size_image_is_not_resampled(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    assert np.array_equal(read_image(tmp_path / "x.png", 24), rgb)


def test_mvtec_layout_loads_splits_types_and_masks(mvtec_root):
    ds = load_dataset(str(mvtec_root), "tiles", 32)
    assert ds.train.images.shape == (12, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert len(ds.test) == 12 and sorted(set(ds.test.types)) == ["blob", "good"]
    assert ds.test.labels.sum() == 6
    assert ds.test.masks is not None and ds.test.masks.shape == (12, 32, 32)
    bad = ds.test.labels == 1
    assert ds.test.masks[torch.from_numpy(bad)].sum() > 0 and ds.test.masks[torch.from_numpy(~bad)].sum() == 0
    # A category folder given directly is the same dataset.
    same = load_dataset(str(mvtec_root / "tiles"), None, 32)
    assert torch.equal(same.train.images, ds.train.images)


def test_odd_sizes_are_resized(tmp_path):
    cat = tmp_path / "odd"
    (cat / "train" / "good").mkdir(parents=True)
    for i, (w, h) in enumerate([(37, 91), (200, 13), (64, 64)]):
        Image.new("L", (w, h), 100 + i).save(cat / "train" / "good" / f"{i}.png")
    ds = load_dataset(str(cat), None, 40)
    assert ds.train.images.shape == (3, 3, 40, 40) and ds.test is None
    assert int(ds.train.images[1].float().mean()) == 101


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("no_train", "train/good"),
    ("empty_train", "no images"),
    ("corrupt", "cannot read image"),
    ("bad_category", "unknown category"),
    ("file_not_folder", "not a folder"),
])
def test_bad_data_gives_one_clear_error(tmp_path, tiles, case, message):
    path, category = str(tmp_path / "nowhere"), None
    if case == "no_train":
        (tmp_path / "x").mkdir()
        path = str(tmp_path / "x")
    elif case == "empty_train":
        (tmp_path / "e" / "train" / "good").mkdir(parents=True)
        path = str(tmp_path / "e")
    elif case == "corrupt":
        d = tmp_path / "c" / "train" / "good"
        d.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(d / "ok.png")
        (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        path = str(tmp_path / "c")
    elif case == "bad_category":
        path, category = str(tiles.parent), "nosuch"
    elif case == "file_not_folder":
        (tmp_path / "f.txt").write_text("x")
        path = str(tmp_path / "f.txt")
    with pytest.raises(SsladError, match=message) as err:
        load_dataset(path, category, 32)
    assert "\n" not in str(err.value)


def test_root_without_category_names_the_choices(mvtec_root):
    with pytest.raises(SsladError, match="--category.*tiles"):
        load_dataset(str(mvtec_root), None, 32)


def test_load_folder(tiles, tmp_path):
    imgs, skipped = load_folder(str(tiles / "test" / "blob"), 32)
    assert len(imgs) == 6 and imgs.images.shape == (6, 3, 32, 32) and skipped == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(SsladError, match="no images"):
        load_folder(str(tmp_path / "empty"), 32)


def test_load_folder_skips_unreadable_files_but_not_all(tiles, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(tiles / "test" / "good", folder)
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"not an image")
    imgs, skipped = load_folder(str(folder), 32)
    assert len(imgs) == 6 and [Path(p).name for p, _ in skipped] == ["text.jpg", "zero.png"]
    assert all("cannot read image" in reason for _, reason in skipped)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "zero.png").write_bytes(b"")
    with pytest.raises(SsladError, match="none of the 1 images"):
        load_folder(str(only_bad), 32)


def test_decompression_bomb_is_an_unreadable_image(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 = 4096 > 2 x 1000: PIL refuses
    with pytest.raises(SsladError, match="decompression-bomb limit"):
        read_image(tmp_path / "big.png", 32)


def test_training_images_stay_strict(tmp_path):
    """One bad training image stops the load with the file named (the README's rule)."""
    from helpers import make_mvtec

    root = make_mvtec(tmp_path / "cat", size=32)
    (root / "train" / "good" / "broken.png").write_bytes(b"")
    with pytest.raises(SsladError, match="broken.png"):
        load_dataset(str(root), None, 32)


def test_elpv_split_is_deterministic_and_disjoint():
    pytest.importorskip("elpv_dataset", reason="elpv-dataset is not installed")
    from sslad.data.elpv import split_elpv

    a, b = split_elpv("elpv"), split_elpv("elpv")
    assert a == b
    train = set(a["train"])
    test_good = {p for p, t in a["test"] if t == "good"}
    assert not train & test_good
    assert len(train) == 1207 and len(test_good) == 301  # every 5th of 1,508 good cells
    assert sum(t != "good" for _, t in a["test"]) == 715
    mono = split_elpv("elpv:mono")
    assert {t for _, t in mono["test"]} == {"good", "mono"}
    with pytest.raises(SsladError, match="unknown elpv subset"):
        split_elpv("elpv:copper")


def _with_orientation(img: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    img.save(path, exif=exif)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied_to_images_and_masks(tmp_path, suffix):
    # A sideways camera: stored pixels wide, the tag says "rotate 90° clockwise to view" (6).
    stored = np.zeros((24, 40, 3), dtype=np.uint8)
    stored[:, :8] = 255  # a white band on the stored left edge: the top edge once upright
    _with_orientation(Image.fromarray(stored), tmp_path / f"img{suffix}", 6)
    arr = read_image(tmp_path / f"img{suffix}", 40)
    assert arr[:4].mean() > 200 and arr[-4:].mean() < 50  # white on top, not on the left
    assert arr[:, :4].mean() < 200
    mask = np.zeros((24, 40), dtype=np.uint8)
    mask[:, :8] = 255
    _with_orientation(Image.fromarray(mask, "L"), tmp_path / "mask.png", 6)
    from sslad.data.io import read_mask
    m = read_mask(tmp_path / "mask.png", 40)
    assert m[:4].all() and not m[-4:].any()
