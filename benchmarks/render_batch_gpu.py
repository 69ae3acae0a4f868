"""One regeneration of a training set on CUDA per renderer batch: what a GPU training pauses for each epoch.

configs/gpu.yaml's pretext (256 px, 2 variants, blobs 0.5, cracks 0.25) over 684 generated base images (the
size of magnetic_tile's training split), torch renderer on CUDA, batch 96 / 256 (the CPU default) / the CUDA
default of ``sslad.backends.render_batch``; median of 3 after one warm-up each. Prints one JSON line.

    python benchmarks/render_batch_gpu.py
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from sslad.backends import make_renderer, render_batch
from sslad.bench import base_images
from sslad.config import SynthConfig
from sslad.synth.generator import PretextGenerator

SIZE, IMAGES = 256, 684


def main() -> None:
    dev = torch.device("cuda")
    base = base_images(IMAGES, SIZE).to(dev)
    synth = SynthConfig(scar="line", variants=2, irregular=0.5, cracks=0.25)
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "size": SIZE, "base_images": IMAGES}
    for batch in (96, 256, render_batch(SIZE, dev)):
        gen = PretextGenerator(base, make_renderer("torch", SIZE, dev, batch_size=batch), synth, seed=0)
        gen.regenerate(0)
        times = []
        for k in range(1, 4):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            n = len(gen.regenerate(k).labels)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[f"batch_{batch}"] = {"seconds": round(statistics.median(times), 4),
                                 "images_per_s": round(n / statistics.median(times)), "samples": n,
                                 "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20)}
        torch.cuda.reset_peak_memory_stats()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
