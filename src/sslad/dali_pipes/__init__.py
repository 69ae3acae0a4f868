"""NVIDIA DALI backend for the pretext task (GPU operators, or DALI's CPU operators).

Importing this package imports DALI; nothing else in sslad does so at import time.
Use :func:`sslad.backends.get_renderer` to obtain it with a clear error when DALI is missing.
"""

from sslad.dali_pipes.pipeline import NUM_PARAMS, pack_params, pretext_pipeline
from sslad.dali_pipes.render import DaliRenderer

__all__ = ["DaliRenderer", "NUM_PARAMS", "pack_params", "pretext_pipeline"]
