from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import make_mvtec

torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def mvtec_root(tmp_path_factory) -> Path:
    """A root holding one category, ``tiles`` (40 px images, 12 train, 6 good + 6 defective test)."""
    root = tmp_path_factory.mktemp("mvtec")
    make_mvtec(root / "tiles", size=40)
    return root


@pytest.fixture(scope="session")
def tiles(mvtec_root) -> Path:
    return mvtec_root / "tiles"


@pytest.fixture(scope="session")
def dali():
    """The DALI backend, or a clean skip when DALI is not installed."""
    return pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed")


#: The tiny training every test that needs a finished run shares (2 epochs at 32 px, regenerated every epoch).
TINY = ["--image-size", "32", "--epochs", "2", "--batch-size", "12", "--device", "cpu", "--seed", "1"]


@pytest.fixture(scope="session")
def tiny_run(tiles, tmp_path_factory):
    """(run folder, CLI output) of one finished tiny training, shared by the whole session (read it, don't
    change it: tests that need a changed checkpoint copy it)."""
    from click.testing import CliRunner

    from sslad.cli import cli

    out = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(cli, ["train", str(tiles), "--out", str(out), *TINY, "--regen-every", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, res.output
