"""Teacher vs student as deployed: both ONNX exports under onnxruntime on the CPU, same batch, side by side.

Usage:
    python benchmarks/export_speed.py NAME TEACHER_RUN STUDENT_RUN [--batch 16] [--repeats 10] [--threads 1]

Exports both runs (``sslad export``, preprocessing and scorer inside), then times alternating batches of
the same uint8 images through each session (warm-up first; median of the repeats) and records
images/s, the ratio, the ONNX file sizes, and both runs' image and pixel AUROC from their
``metrics.json``. Writes ``benchmarks/results/NAME.json`` with machine info.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    import onnxruntime as ort
    from common import save_record

    from sslad.export import export_run

    name, runs = argv[0], {"teacher": Path(argv[1]), "student": Path(argv[2])}
    opts = dict(zip(argv[3::2], argv[4::2], strict=False))
    batch, repeats = int(opts.get("--batch", 16)), int(opts.get("--repeats", 10))
    threads = int(opts.get("--threads", 1))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = threads
    rows, sessions = {}, {}
    for role, run in runs.items():
        res = export_run(str(run), "onnx", str(run / "model.onnx"))
        sessions[role] = ort.InferenceSession(res["out"], so, providers=["CPUExecutionProvider"])
        m = json.loads((run / "metrics.json").read_text())
        files = [Path(res["out"]), Path(f"{res['out']}.data")]  # the graph and its external weights
        rows[role] = {"run": str(run), "onnx_mb": sum(f.stat().st_size for f in files if f.is_file()) / 2**20,
                      "image_size": res["image_size"], "image_auroc": m.get("image_auroc"),
                      "pixel_auroc": m.get("pixel_auroc"), "seconds": []}
    size = rows["teacher"]["image_size"]
    x = np.random.default_rng(0).integers(0, 256, (batch, 3, size, size), dtype=np.uint8)
    for sess in sessions.values():
        sess.run(None, {"images": x})  # warm-up
    for _ in range(repeats):  # alternate, so both see the same machine state
        for role, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, {"images": x})
            rows[role]["seconds"].append(time.perf_counter() - t0)
    for r in rows.values():
        r["images_per_s"] = batch / statistics.median(r["seconds"])
    record = {"name": name, "batch": batch, "repeats": repeats, "ort_threads": threads, "rows": rows,
              "speedup": rows["student"]["images_per_s"] / rows["teacher"]["images_per_s"],
              "size_ratio": rows["student"]["onnx_mb"] / rows["teacher"]["onnx_mb"]}
    dest = save_record(name, record)
    for role, r in rows.items():
        print(f"{role:<8} {r['images_per_s']:8.1f} img/s  {r['onnx_mb']:6.1f} MB  image AUROC {r['image_auroc']}")
    print(f"student/teacher: {record['speedup']:.2f}x faster, {record['size_ratio']:.2f} of the size -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
