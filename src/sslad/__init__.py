"""sslad: self-supervised anomaly detection for industrial images.

A CutPaste-style 3-way pretext task (good / cut-paste / scar) trains a ResNet; a density
model fitted on embeddings of good images scores new ones. The synthetic pretext data is
regenerated every few epochs by a torch renderer or by an NVIDIA DALI graph (GPU or CPU).

Importing ``sslad`` is cheap: torch is imported by the submodules that need it, DALI only by
``sslad.dali_pipes``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
