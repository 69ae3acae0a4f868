"""Run one real-data training command, time it, and record its metrics with machine info.

Usage:
    python benchmarks/record_run.py NAME -- sslad train ../shared/data/magnetic_tile --image-size 64 ... --out DIR

Writes ``benchmarks/results/NAME.json``: the command, wall time, the run's ``metrics.json`` (and its student's,
``student_metrics``, after ``--student``), its per-epoch ``metrics.csv`` rows and the machine metadata of
``sslad bench``.
"""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from sslad.bench import metadata


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 1:
        print(__doc__, file=sys.stderr)
        return 2
    name, cmd = argv[0], argv[2:]
    out = Path(cmd[cmd.index("--out") + 1])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env={**__import__("os").environ, "SSLAD_NO_PROGRESS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"command failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    record = {
        "name": name,
        "command": " ".join(shlex.quote(c) for c in cmd),
        "wall_time_s": round(wall, 1),
        "metrics": json.loads((out / "metrics.json").read_text()),
        "epochs": list(csv.DictReader(open(out / "metrics.csv"))),
        "metadata": metadata(),
    }
    if (out / "student" / "metrics.json").is_file():  # `train --student`: the student's own run folder
        record["student_metrics"] = json.loads((out / "student" / "metrics.json").read_text())
    dest = Path(__file__).parent / "results" / f"{name}.json"
    dest.write_text(json.dumps(record, indent=1) + "\n")
    m = record["metrics"]
    print(f"{name}: image AUROC {m.get('image_auroc')}, wall {wall:.0f} s -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
