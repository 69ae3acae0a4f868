"""What every benchmark script shares: where and how a recorded result is written."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save_record(name: str, record: dict) -> Path:
    """``benchmarks/results/NAME.json`` (with the machine info of ``sslad bench``), announced on stdout."""
    from sslad.bench import metadata

    record = {**record, "metadata": record.get("metadata") or metadata()}
    dest = RESULTS / f"{name}.json"
    dest.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {dest}")
    return dest
