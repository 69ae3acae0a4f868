"""A network-free yardstick: how far do an image's grey-level statistics alone rank the test split?

Usage:
    python benchmarks/intensity_baseline.py NAME DATA [IMAGE_SIZE]   (DATA as for sslad train; IMAGE_SIZE 128)

Each image (decoded as training decodes it, grey = mean of the channels, in [0, 1]) becomes its mean, its
standard deviation and nine quantiles (1..99 %). Reported on the test split, with the fit images of training's own
split (held-out good images kept out): the AUROC of the mean intensity, darker = anomalous and brighter =
anomalous (both signs are given: choosing one is a look at the labels), and of a Gaussian (Mahalanobis distance)
fitted on the eleven statistics of the fit images. Where these come near a network's AUROC, the defects are mostly
changes of brightness, and the network has to beat that, not chance. Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import save_record

from sslad.config import ScoreConfig
from sslad.data import load_dataset, split_train
from sslad.scoring.metrics import auroc

QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def statistics(images: torch.Tensor) -> np.ndarray:
    """(N, 11) float64: mean, standard deviation and :data:`QUANTILES` of each image's grey levels in [0, 1]."""
    grey = images.float().mean(1).flatten(1) / 255
    q = torch.quantile(grey, torch.tensor(QUANTILES), dim=1).T
    return torch.cat([grey.mean(1, keepdim=True), grey.std(1, keepdim=True), q], 1).double().numpy()


def mahalanobis(fit: np.ndarray, x: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    mu, cov = fit.mean(0), np.cov(fit, rowvar=False) + ridge * np.eye(fit.shape[1])
    d = x - mu
    return np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    name, data_path, size = argv[0], argv[1], int(argv[2]) if len(argv) == 3 else 128
    data = load_dataset(data_path, None, size)
    fit, _ = split_train(data.train, ScoreConfig.holdout, ScoreConfig.holdout_min)
    y, test = data.test.labels, statistics(data.test.images)
    rows = {"mean_darker": auroc(y, -test[:, 0]), "mean_brighter": auroc(y, test[:, 0]),
            "gaussian_on_statistics": auroc(y, mahalanobis(statistics(fit.images), test))}
    save_record(name, {"name": name, "data": data_path, "image_size": size, "fit_images": len(fit),
                       "test_images": len(y), "anomalous": int(y.sum()), "image_auroc": rows})
    print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
