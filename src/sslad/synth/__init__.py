"""The pretext task: plan sampling (``plan``) and the reference torch renderer (``render``)."""

from sslad.synth.plan import (
    CLASS_NAMES,
    CUTPASTE,
    GOOD,
    SCAR,
    Plan,
    balanced_plan,
    color_matrices,
    inverse_affines,
    pad_for,
    sample_plan,
)
from sslad.synth.render import reflect_pad, render

__all__ = [
    "CLASS_NAMES", "CUTPASTE", "GOOD", "SCAR", "Plan", "balanced_plan", "color_matrices",
    "inverse_affines", "pad_for", "reflect_pad", "render", "sample_plan",
]
