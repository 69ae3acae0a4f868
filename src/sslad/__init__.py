"""sslad: self-supervised anomaly detection for industrial images.

A CutPaste-style 3-way pretext task (good / cut-paste / scar) trains a ResNet; a density
model fitted on embeddings of good images scores new ones. The synthetic pretext data is
regenerated every few epochs by a torch renderer or by an NVIDIA DALI graph (GPU or CPU).

The Python API (:mod:`sslad.api`)::

    import sslad
    run_dir = sslad.train(config, "runs/x")     # what ``sslad train`` does (student=ARCH: ``--student``)
    student_dir = sslad.train_student(run_dir, "runs/x-student")   # what ``sslad distill`` does
    detector = sslad.load(run_dir)              # a Detector
    sslad.calibrate(run_dir, quantile=0.95)     # its thresholds at another quantile, no training
    sslad.rescore(run_dir, "runs/x-w", map_weight="auto")   # its scorer fitted again, no training
    result = detector.score(paths_or_uint8)     # .scores, .maps, .anomalous

Importing ``sslad`` is cheap: torch is imported by the submodules that need it (these names load
on first use), DALI only by ``sslad.dali_pipes``.
"""

__version__ = "0.9.8"

_API = ("Detection", "Detector", "calibrate", "load", "rescore", "train", "train_student")


def __getattr__(name: str):
    if name in _API:
        from sslad import api

        return getattr(api, name)
    raise AttributeError(f"module 'sslad' has no attribute {name!r}")


__all__ = ["__version__", *_API]
