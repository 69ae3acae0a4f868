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
