"""The public detector: a trained network and its fitted scorer, from images to decisions.

``sslad.load(run_dir)`` returns a :class:`Detector`; ``detector.score(x)`` takes image paths or a
uint8 array/tensor and returns a :class:`Detection`. ``sslad eval``, ``sslad predict`` and
``sslad export`` all go through it, so a notebook gets the numbers the CLI writes::

    import sslad
    det = sslad.load("runs/elpv-mono")
    res = det.score(["cell1.png", "cell2.png"])
    res.scores, res.maps.shape, res.anomalous      # (2,), (2, S, S), (2,) bool
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslad.config import DEFAULT_DEVICE
from sslad.errors import SsladError
from sslad.models import PretextNet, infer_images
from sslad.models.embed import forward_maps, forward_scored
from sslad.models.tiles import resize_images
from sslad.scoring import Scorer

#: Image files :meth:`Detector.score_chunks` decodes and scores at a time (``sslad predict``'s memory: the images and
#: maps of this many, about half a gigabyte at 512 px).
SCORE_CHUNK = 256


@dataclass
class Detection:
    """What :meth:`Detector.score` returns for N images.

    Attributes:
        scores: float64 (N,) image anomaly scores (higher is more anomalous).
        maps: float32 (N, H, W) anomaly maps (the model's S x S for paths; the input's H x W for arrays),
            or None for a run that makes no maps (no per-pixel head and ``--map seg``).
        anomalous: bool (N,), ``scores > threshold`` (the threshold stored in the run).
        paths: the scored files (paths input only; unreadable files are left out, see ``skipped``).
        skipped: (path, reason) of the files that could not be read.
        images: uint8 (N, 3, S, S) the images as the model saw them (for overlays).
    """

    scores: np.ndarray
    maps: torch.Tensor | None
    anomalous: np.ndarray
    paths: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    images: torch.Tensor | None = None


class Detector:
    """A network and its fitted scorer (see the module docstring). Build it with :meth:`load`."""

    def __init__(self, model: PretextNet, scorer: Scorer, image_size: int, info: dict | None = None):
        self.model = model.eval()
        self.scorer = scorer
        self.image_size = int(image_size)
        self.info = info or {}  # the checkpoint's config, versions and history

    @classmethod
    def load(cls, run_dir: str | Path, device: str = DEFAULT_DEVICE) -> Detector:
        """A finished run (its folder, or its ``model.pt``) on ``device`` (auto, cpu, cuda)."""
        from sslad.checkpoint import load_for_scoring, run_folder

        return cls.from_checkpoint(*load_for_scoring(run_folder(run_dir), device))

    @classmethod
    def from_checkpoint(cls, model: PretextNet, scorer: Scorer, ckpt: dict) -> Detector:
        """The detector of a checkpoint already loaded (``sslad.checkpoint.load_for_scoring``'s triple)."""
        info = {k: ckpt.get(k) for k in ("config", "epoch", "regen_index", "sslad_version", "format_version", "extra")}
        return cls(model, scorer, int(ckpt["preprocessing"]["image_size"]), info)

    @property
    def threshold(self) -> float | None:
        return self.scorer.threshold

    @property
    def pixel_threshold(self) -> float | None:
        return self.scorer.pixel_threshold

    @property
    def map_range(self) -> list[float] | None:
        return self.scorer.map_range

    @property
    def has_maps(self) -> bool:
        return bool(self.model.cfg.seg_head) or self.scorer.map_source != "seg"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, x: Sequence[str | Path] | np.ndarray | torch.Tensor, progress: str | None = None) -> Detection:
        """Score image files (decoded and resized like the training data; unreadable ones are skipped and
        listed) or uint8 RGB images (N, 3, H, W) (resized to the model's side when H, W differ)."""
        if isinstance(x, (str, Path)):
            x = [x]
        if isinstance(x, (np.ndarray, torch.Tensor)):
            images = torch.as_tensor(x)
            if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
                raise SsladError(f"expected uint8 RGB images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
            size = tuple(images.shape[-2:])
            det = self._score_images(self._resize(images), progress)
            if det.maps is not None and size != (self.image_size, self.image_size):
                det.maps = F.interpolate(det.maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            return det
        from sslad.data import load_files

        files = [str(p) for p in x]
        images, skipped = load_files(files, self.image_size)
        det = self._score_images(images.images, progress)
        det.paths, det.skipped = images.paths, skipped
        return det

    def score_chunks(self, files: Sequence[str | Path], chunk: int = SCORE_CHUNK,
                     progress: str | None = None) -> Iterator[Detection]:
        """:meth:`score` of image files ``chunk`` at a time, one :class:`Detection` per chunk (its paths and skipped
        files included), so that memory holds one chunk's images and maps whatever the number of files (what
        ``sslad predict`` does). An error once every file was tried, when none could be read."""
        from sslad.data import load_files
        from sslad.progress import bar

        files = [str(p) for p in files]
        read, skipped = 0, []
        with bar(total=len(files), desc=progress, unit="img") as done:
            for i in range(0, len(files), chunk):
                images, bad = load_files(files[i:i + chunk], self.image_size, require_any=False)
                if len(images.paths):
                    det = self._score_images(images.images, None)
                else:  # a chunk of unreadable files only: nothing to score, their reasons to report
                    det = Detection(scores=np.empty(0), maps=None, anomalous=np.zeros(0, bool))
                det.paths, det.skipped = images.paths, bad
                read += len(images.paths)
                skipped.extend(bad)
                done.update(len(files[i:i + chunk]))
                yield det
        if files and not read:
            raise SsladError(f"none of the {len(files)} images could be read (first: {skipped[0][1]})")

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        return resize_images(images, self.image_size)

    def _score_images(self, images: torch.Tensor, progress: str | None) -> Detection:
        out = infer_images(self.model, images, progress=progress, tile=self.scorer.tile, map_fn=self.scorer.map_fn,
                           embed_fn=self.scorer.embed_fn, whole=self.scorer.whole_view, precision=self.scorer.precision,
                           overlap=self.scorer.tile_overlap, tile_pass=self.scorer.tile_pass)
        scores, maps = self.scorer.score(out.embeddings, out.maps, self.image_size, whole=out.whole)
        anomalous = scores > self.threshold if self.threshold is not None else np.zeros(len(scores), bool)
        return Detection(scores=scores, maps=maps, anomalous=anomalous, images=images.cpu())

    def as_module(self) -> nn.Module:
        """The detector as one ``nn.Module`` (uint8 images -> (float32 scores, maps)): what ``export`` writes."""
        return _DetectorModule(self.model, self.scorer, self.image_size)


class _DetectorModule(nn.Module):
    def __init__(self, model: PretextNet, scorer: Scorer, size: int):
        super().__init__()
        self.model, self.scorer, self.size = model.eval(), scorer, size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sc = self.scorer
        emb, probs = forward_scored(self.model, images.float(), sc.tile, sc.tile_overlap, sc.tile_pass, sc.map_fn,
                                    sc.embed_fn)
        whole = None
        if self.scorer.whole_view:
            small = resize_images(images, self.scorer.whole_view).float()
            whole = forward_maps(self.model, small, None, self.scorer.embed_fn, maps=False)[0]
        scores, maps = self.scorer.score_tensors(emb, probs, self.size, whole=whole)
        return scores.float(), maps


def load(run_dir: str | Path, device: str = DEFAULT_DEVICE) -> Detector:
    """``sslad.load``: the :class:`Detector` of a finished run."""
    return Detector.load(run_dir, device)


__all__ = ["Detection", "Detector", "load"]
