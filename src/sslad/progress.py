"""Progress bars: shown on an interactive terminal, silent in logs and CI (tqdm's ``disable=None``)."""

from __future__ import annotations

import os


def bar(iterable=None, desc: str | None = None, total: int | None = None, enabled: bool = True, **kw):
    from tqdm.auto import tqdm

    off = (not enabled) or desc is None or os.environ.get("SSLAD_NO_PROGRESS") == "1"
    return tqdm(iterable, desc=desc, total=total, disable=True if off else None, leave=False, **kw)
