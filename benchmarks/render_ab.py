"""The torch renderer of a git revision against the working tree's, interleaved in one process (rounds BASE, NEW,
NEW INTO, BASE ...; the median of each), with the check that all render the same bytes: what a renderer change buys.
NEW INTO renders over its last result (``render(into=)``, what training does) where the working tree has it.

Both render as training does on the CPU (``TorchRenderer``: chunks of 16 groups, one intra-op thread each, W chunks
at a time) the same plans of the recipes' families (line scars, blobs, cracks). Data: magnetic_tile's first N good
training images at S px when ``../shared/data/magnetic_tile`` is there, else synthetic textures
(``render_workers.images``).
Usage: python benchmarks/render_ab.py NAME [--base HEAD] [--size 384] [--images 684] [--workers 2] [--rounds 7]
Writes benchmarks/results/NAME.json (seconds per regeneration of each, the ratio, machine info).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import save_record
from render_workers import digest, images

from sslad.config import SynthConfig
from sslad.runtime import torch_threads
from sslad.synth import torch_render
from sslad.synth.generator import PretextGenerator

MODULE = "src/sslad/synth/torch_render.py"


def module_at(rev: str):
    """``sslad.synth.torch_render`` as it was at ``rev`` (imported under another name beside today's)."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:{MODULE}"], cwd=root, check=True, capture_output=True,
                            text=True).stdout
    spec = importlib.util.spec_from_loader(f"torch_render_at_{rev}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    exec(compile(source, f"{rev}:{MODULE}", "exec"), mod.__dict__)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--base", default="HEAD", help="git revision of the renderer to compare against")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--images", type=int, default=684)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    base = subprocess.run(["git", "rev-parse", "--short", a.base], check=True, capture_output=True,
                          text=True).stdout.strip()
    arms = {f"base {base}": module_at(a.base), "working tree": torch_render}
    if "into" in inspect.signature(torch_render.render).parameters:
        arms["working tree, over its last result"] = torch_render
    last = None
    x, source = images(a.images, a.size)
    synth = SynthConfig(scar="line", irregular=0.5, other_source=0.5, cracks=0.25)  # the recipes' families
    gen = PretextGenerator(x, None, synth, seed=0)
    times: dict[str, list[float]] = {k: [] for k in arms}
    same = True
    for k in range(a.rounds + 1):  # round 0: warm-up, untimed
        plan, outs = gen.plan(k), set()
        for name, mod in arms.items():
            t0 = time.perf_counter()
            kw = {"into": last} if name.endswith("last result") else {}
            with torch_threads(1):
                out = mod.render(plan, gen.padded, chunk=16, workers=a.workers, **kw)
            if k:
                times[name].append(time.perf_counter() - t0)
            outs.add(digest(out))
            last = out if kw else last
        same &= len(outs) == 1
    rows = {k: {"median_s": round(statistics.median(t), 4), "seconds": [round(s, 4) for s in t]}
            for k, t in times.items()}
    old = rows[f"base {base}"]["median_s"]
    ratios = {k: round(old / v["median_s"], 3) for k, v in rows.items() if not k.startswith("base")}
    print(f"torch renderer, {source}, {len(x)} images at {a.size} px ({3 * len(x)} samples), {a.workers} workers: "
          + ", ".join(f"{k} {v['median_s']:.3f} s" for k, v in rows.items())
          + "; " + ", ".join(f"{r}x" for r in ratios.values()) + f"; same bytes: {same}")
    command = (f"python benchmarks/render_ab.py {a.name} --base {a.base} --size {a.size} --images {a.images} "
               f"--workers {a.workers} --rounds {a.rounds}")
    save_record(a.name, {"name": a.name, "command": command, "base": base, "data": source, "images": len(x),
                         "size": a.size, "workers": a.workers, "regeneration": rows, "speedup": ratios,
                         "same_bytes": same})


if __name__ == "__main__":
    main()
