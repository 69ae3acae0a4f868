"""NVIDIA DALI backend for the pretext task (GPU operators, or DALI's CPU operators).

Importing this package imports DALI; within sslad only :func:`sslad.backends.make_renderer`
does, and only for ``--backend dali``.
"""

from sslad.dali_pipes.pipeline import NUM_PARAMS, pack_params, pretext_pipeline
from sslad.dali_pipes.render import DaliRenderer

__all__ = ["DaliRenderer", "NUM_PARAMS", "pack_params", "pretext_pipeline"]
