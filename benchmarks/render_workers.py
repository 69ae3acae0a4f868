"""A CPU regeneration rendered by one thread against several, interleaved in one process (rounds 1, W, 1, W ...;
the median of each), with the check that both render the same bytes: the torch renderer's chunks shared among W
threads (``TorchRenderer(cpu_workers=W)``), or DALI's CPU graph with W worker threads
(``DaliRenderer(num_threads=W)``, ``--backend dali``).

Data: magnetic_tile's first N good training images at S px when ``../shared/data/magnetic_tile`` is there (the long
recipe's regeneration: 684 images, 256 px, blobs and cracks), else synthetic textures of that size.
Usage: python benchmarks/render_workers.py NAME [--backend torch|dali] [--size 256] [--images 684] [--workers 2]
       [--rounds 7]
Writes benchmarks/results/NAME.json (seconds per regeneration, the ratio, machine info).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

import torch
from common import save_record

from sslad.config import SynthConfig
from sslad.synth.generator import PretextGenerator
from sslad.synth.renderer import TorchRenderer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "magnetic_tile"


def images(n: int, size: int) -> tuple[torch.Tensor, str]:
    if DATA.is_dir():
        from sslad.data import load_dataset

        return load_dataset(str(DATA), None, size, device="cpu", splits=("train",)).train.images[:n], "magnetic_tile"
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(n, 1, size // 8, size // 8, generator=g), size=size,
                                           mode="bilinear", align_corners=False)
    return (base.expand(-1, 3, -1, -1) * 200 + torch.rand(n, 3, size, size, generator=g) * 40).to(torch.uint8), \
        "synthetic textures"


def renderer(backend: str, size: int, threads: int):
    if backend == "dali":
        from sslad.dali_pipes import DaliRenderer

        return DaliRenderer(size, "cpu", num_threads=threads)
    return TorchRenderer(cpu_workers=threads)


def digest(out: tuple[torch.Tensor, torch.Tensor]) -> str:
    return hashlib.sha1(out[0].numpy().tobytes() + out[1].numpy().tobytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--backend", choices=("torch", "dali"), default="torch")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=684)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    x, source = images(a.images, a.size)
    synth = SynthConfig(scar="line", irregular=0.5, other_source=0.5, cracks=0.25)  # the recipes' families
    arms = {w: renderer(a.backend, a.size, w) for w in (1, a.workers)}
    gens = {w: PretextGenerator(x, r, synth, seed=0) for w, r in arms.items()}
    times: dict[int, list[float]] = {w: [] for w in arms}
    same = True
    for k in range(a.rounds + 1):  # round 0: warm-up, untimed
        outs = {}
        for w, gen in gens.items():
            t0 = time.perf_counter()
            s = gen.regenerate(k)
            if k:
                times[w].append(time.perf_counter() - t0)
            outs[w] = digest((s.images.contiguous(), s.masks))
        same &= len(set(outs.values())) == 1
    med = {w: statistics.median(t) for w, t in times.items()}
    rows = {f"{w} worker{'s' if w > 1 else ''}": {"median_s": round(m, 4), "seconds": [round(t, 4) for t in times[w]]}
            for w, m in med.items()}
    ratio = round(med[1] / med[a.workers], 3)
    print(f"{a.backend}: {source}, {len(x)} images at {a.size} px ({3 * len(x)} samples): " +
          ", ".join(f"{k} {v['median_s']:.3f} s" for k, v in rows.items()) + f"; {ratio}x; same bytes: {same}")
    command = (f"python benchmarks/render_workers.py {a.name} --backend {a.backend} --size {a.size} "
               f"--images {a.images} --workers {a.workers} --rounds {a.rounds}")
    save_record(a.name, {"name": a.name, "command": command, "backend": a.backend, "data": source,
                "images": len(x), "size": a.size, "torch_threads": torch.get_num_threads(), "regeneration": rows,
                "speedup": ratio, "same_bytes": same})


if __name__ == "__main__":
    main()
