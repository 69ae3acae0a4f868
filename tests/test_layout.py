"""Feature: the dependency rules of the package hold (imports point one way).

Each check imports one package in a fresh interpreter and lists which sslad packages and heavy
third-party modules that pulled in.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import sslad


def imported_by(module: str) -> set[str]:
    code = (f"import sys, json, {module}\n"
            "watch = ('sslad', 'nvidia.dali', 'click')\n"
            "print(json.dumps([m for m in sys.modules if m.startswith(watch)]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    return set(json.loads(out))


RULES = {
    # package: what importing it must never import
    "sslad.synth": ["nvidia.dali", "click", "sslad.models", "sslad.scoring", "sslad.data", "sslad.dali_pipes"],
    "sslad.models": ["nvidia.dali", "click", "sslad.synth", "sslad.scoring", "sslad.data"],
    "sslad.scoring": ["nvidia.dali", "click", "sslad.models", "sslad.synth", "sslad.data"],
    "sslad.data": ["nvidia.dali", "click", "sslad.models", "sslad.synth", "sslad.scoring"],
    "sslad.training": ["nvidia.dali", "click"],
    "sslad.bench": ["nvidia.dali", "click"],
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_forbidden_imports(package):
    got = imported_by(package)
    bad = [m for m in got if any(m == f or m.startswith(f + ".") for f in RULES[package])]
    assert not bad, f"importing {package} imports {bad}"


def test_no_library_module_imports_click():
    """Only the CLI (and ``python -m sslad``, which runs it) knows click: import every other module at once."""
    names = [m.name for m in pkgutil.walk_packages(sslad.__path__, "sslad.")
             if m.name not in ("sslad.cli", "sslad.__main__") and not m.name.startswith("sslad.dali_pipes")]
    got = imported_by(", ".join(names))
    assert "click" not in got and "sslad.cli" not in got


def _modules_naming(package: str) -> list[str]:
    """Source files of sslad (outside ``package`` itself) with an import line naming ``package``, lazy
    imports inside functions and TYPE_CHECKING blocks included."""
    from pathlib import Path

    root = Path(sslad.__file__).parent
    own = package.split(".")[-1]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if own not in p.relative_to(root).parts
                  and any(line.strip().startswith((f"from {package}", f"import {package}"))
                          for line in p.read_text().splitlines()))


def test_only_the_chooser_names_dali():
    """The backend chooser lives above synth and dali_pipes: only sslad/backends.py imports DALI's package,
    and nothing in synth does, not even lazily (so dali_pipes -> synth is the only direction)."""
    assert _modules_naming("sslad.dali_pipes") == ["backends.py"]


def test_scoring_names_nothing_of_the_network():
    """The scorer receives plain tensors: no module of sslad.scoring names sslad.models, not even as a type."""
    assert not [m for m in _modules_naming("sslad.models") if m.startswith("scoring/")]
