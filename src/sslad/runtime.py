"""Devices, seeds and distributed (torchrun) context."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from sslad.config import DEFAULT_DEVICE, DEVICES
from sslad.errors import SsladError


def resolve_device(name: str = DEFAULT_DEVICE) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SsladError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise SsladError(f"unknown device {name!r} ({'|'.join(DEVICES)})")


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA and on CPUs with native bf16, fp32 otherwise."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu_has_bf16() else "fp32"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Dist:
    """Distributed context, from torchrun's environment (world size 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Each process takes GPU ``LOCAL_RANK`` on CUDA (NCCL) or stays on the CPU (Gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world), device


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (``None``: leave them)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StopSignals:
    """While active, SIGINT (Ctrl-C) and SIGTERM (timeout, Slurm, docker stop) set ``self.signal``
    instead of interrupting: the training loop checks it between steps, saves, then stops. A
    second signal only repeats the notice, so a double Ctrl-C cannot cut a save in half."""

    def __init__(self, log=print):
        self.signal: int | None = None
        self.log = log
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signum
            self.log(f"{signal.Signals(signum).name}: finishing the current step, then saving the training state")
        else:
            self.log("already stopping: the training state is being saved")

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
