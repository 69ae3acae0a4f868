"""The pretext task: the plan sampler (``plan``), shared geometry (``geometry``), the reference torch
renderer (``torch_render``), the renderer protocol (``renderer``) and regeneration (``generator``).

It never imports DALI: the backend is chosen above it, in :mod:`sslad.backends`.
"""

from sslad.synth.geometry import color_matrices, inverse_affines
from sslad.synth.plan import CLASS_NAMES, Plan, PretextClass, balanced_plan, pad_for, sample_plan
from sslad.synth.torch_render import reflect_pad, render

__all__ = [
    "CLASS_NAMES", "Plan", "PretextClass", "balanced_plan", "color_matrices", "inverse_affines", "pad_for",
    "reflect_pad", "render", "sample_plan",
]
