"""Teacher and student side by side: where they disagree is an anomaly map (the *discrepancy map*). No I/O.

The student of the downstream transfer matched the teacher's layer1-3 features on good images only, so
on an anomaly the two drift apart (as in STFPM and EfficientAD). :class:`DiscrepancyNet` answers like
the pretext network (``forward`` -> (class logits, embedding, per-pixel logits)), so the scorer, the
detector, ``predict`` and ``export`` use it unchanged: the class logits and the embedding are the
teacher's, the per-pixel output is the logit of half the student-teacher cosine distance, averaged
over the three scales at 1/4 of the input (a cosine distance lies in [0, 2]; half of it is a
probability-like value the scorer's sigmoid gives back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslad.models.net import NetConfig, PatchLevels, PretextNet
from sslad.models.student import StudentConfig, StudentNet


def feature_distance(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per scale, 1 - cosine similarity of student and teacher features at each location: (N, h, w) each."""
    return [1 - F.cosine_similarity(s.float(), t.float(), dim=1) for s, t in zip(student, teacher, strict=True)]


def standardized_distance(student: list[torch.Tensor], teacher: list[torch.Tensor],
                          stats: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Per scale, the mean over channels of the squared difference in units of the teacher's per-channel std
    (``stats``: (mean, std) per scale, as :meth:`StudentNet.target_stats`): (N, h, w) each."""
    return [(((s.float() - t.float()) / sd) ** 2).mean(1)
            for s, t, (_, sd) in zip(student, teacher, stats, strict=True)]


def mean_distance(student: list[torch.Tensor], teacher: list[torch.Tensor],
                  stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """(N, 1, h, w) at the first scale's resolution: the layer1-3 feature distances (cosine, or
    :func:`standardized_distance` with ``stats``) upsampled and averaged."""
    dist = feature_distance(student[:3], teacher[:3]) if stats is None else \
        standardized_distance(student[:3], teacher[:3], stats[:3])
    hw = dist[0].shape[-2:]
    return sum(F.interpolate(d[:, None], size=hw, mode="bilinear", align_corners=False) for d in dist) / 3


@dataclass(frozen=True)
class PairConfig:
    """Stored in checkpoints (``model_args``, ``kind: pair``): both networks' own arguments."""

    teacher: dict = field(default_factory=dict)
    student: dict = field(default_factory=dict)
    seg_head: bool = True  # the discrepancy map
    kind: str = "pair"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "teacher": dict(self.teacher), "student": dict(self.student)}


class DiscrepancyNet(nn.Module):
    """The teacher's logits and embedding; the student-teacher discrepancy as the per-pixel output."""

    def __init__(self, teacher: PretextNet, student: StudentNet):
        super().__init__()
        self.teacher, self.student = teacher, student
        self.cfg = PairConfig(teacher=teacher.cfg.to_dict(), student=student.cfg.to_dict())
        self.embed_dim = teacher.embed_dim

    @classmethod
    def from_dict(cls, d: dict) -> DiscrepancyNet:
        return cls(PretextNet(NetConfig.from_dict(d["teacher"])), StudentNet(StudentConfig.from_dict(d["student"])))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher.embed(x)

    def _outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        e, feats = self.teacher.features(x)
        half = mean_distance(self.student.distill_features(x, seg=False)[0], feats[1:4]) / 2
        return e, feats, torch.logit(half.clamp(1e-6, 1 - 1e-6))

    def dense_outputs(self, x: torch.Tensor, seg: bool = True) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                        PatchLevels]:
        """(the teacher's embedding, discrepancy logits, the teacher's layer2-4 maps as :class:`PatchLevels`);
        without ``seg`` no discrepancy (None): the student is not run."""
        if not seg:
            e, feats = self.teacher.features(x)
            return e, None, PatchLevels(feats[2:5])
        e, feats, disc = self._outputs(x)
        return e, disc, PatchLevels(feats[2:5])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the teacher's class logits (N, 3) and embedding (N, D), discrepancy logits (N, 1, H/4, W/4))."""
        e, _, disc = self._outputs(x)
        return self.teacher.classifier(self.teacher.head(e)), e, disc


__all__ = ["DiscrepancyNet", "PairConfig", "feature_distance", "mean_distance"]
