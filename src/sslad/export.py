"""``sslad export``: a finished run as one ONNX or TorchScript model with the preprocessing and the fitted
scorer inside.

The exported model takes what a user has, uint8 RGB images ``(N, 3, S, S)`` at the run's stored size
(the network normalises them itself), and returns the image score ``(N,)`` float32 (what
``sslad predict`` writes; above the threshold means anomalous) and the anomaly map ``(N, S, S)``
float32 (``(N, 0, 0)`` for a run trained without the per-pixel head). The density is evaluated in
float64 inside the graph, as in sslad itself, so scores match ``predict``'s (exactly for a run scored in fp32,
the default; a run scored in bf16, ``--inference-precision bf16``, gets the fp32 graph, its scores within a few
per cent of ``predict``'s). A JSON sidecar (``FILE.json``) holds the thresholds, the map display range, the image
size, the run's inference precision and the sslad version.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from sslad import __version__
from sslad.config import EXPORT_FORMATS
from sslad.detector import Detector
from sslad.errors import SsladError
from sslad.files import check_output_file, writing

#: Default file name of each format (RUN_DIR/<name>); ``sslad.training.RUN_FILES`` lists them for --overwrite.
EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
#: What an export writes beside FILE: the JSON sidecar, and ONNX's external weights (torch's exporter).
EXPORT_SIDECARS = (".json", ".data")


def export_run(run_dir: str, fmt: str, out_file: str | None = None) -> dict:
    """Write ``RUN_DIR/model.onnx`` (or ``model.torchscript.pt``, or ``out_file``) and its JSON sidecar."""
    from sslad.checkpoint import run_folder

    if fmt not in EXPORT_FILES:
        raise SsladError(f"unknown export format {fmt!r} ({'|'.join(EXPORT_FORMATS)})")
    run = run_folder(run_dir)
    out = check_output_file(out_file if out_file else run / EXPORT_FILES[fmt], "--out")
    detector = Detector.load(run, "cpu")
    # an exported file has no memory layout: trace the plain graph (in ONNX 11 nodes fewer than from channels-last,
    # the same outputs and speed under onnxruntime)
    detector.model.to(memory_format=torch.contiguous_format)
    size = detector.image_size
    module = detector.as_module()
    example = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    with writing(out, "--out"), torch.no_grad():
        if fmt == "onnx":
            _export_onnx(module, example, out)
        else:
            with warnings.catch_warnings():  # torch marks TorchScript deprecated; the format still loads anywhere
                warnings.simplefilter("ignore")
                torch.jit.trace(module, example, check_trace=False).save(str(out))
        sidecar = {"format": fmt, "sslad_version": __version__, "image_size": size, "input": "images",
                   "input_spec": "uint8 (N, 3, S, S) RGB, 0..255", "outputs": ["scores", "maps"],
                   "threshold": detector.threshold, "pixel_threshold": detector.pixel_threshold,
                   "map_range": detector.map_range, "image_score": detector.scorer.image_score,
                   # the graph computes in fp32; a run scored in bf16 set its thresholds on bf16 scores (close)
                   "run_inference_precision": detector.scorer.precision or "fp32", "graph_precision": "fp32"}
        Path(f"{out}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return {"out": str(out), "sidecar": f"{out}.json", "image_size": size}


def _export_onnx(module: nn.Module, example: torch.Tensor, out: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise SsladError("--format onnx needs the export extra: pip install 'sslad[export]'") from exc
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(out), input_names=["images"], output_names=["scores", "maps"],
                          dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}}, dynamo=True,
                          verbose=False)
