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
    "sslad.train": ["nvidia.dali", "click"],
    "sslad.bench": ["nvidia.dali", "click"],
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_forbidden_imports(package):
    got = imported_by(package)
    bad = [m for m in got if any(m == f or m.startswith(f + ".") for f in RULES[package])]
    assert not bad, f"importing {package} imports {bad}"


def test_no_library_module_imports_click():
    """Only the CLI knows click: import every other module of the package at once."""
    names = [m.name for m in pkgutil.walk_packages(sslad.__path__, "sslad.")
             if m.name != "sslad.cli" and not m.name.startswith("sslad.dali_pipes")]
    got = imported_by(", ".join(names))
    assert "click" not in got and "sslad.cli" not in got


def test_only_backends_names_dali():
    """Outside the DALI package itself, only synth/backends.py imports it."""
    from pathlib import Path

    root = Path(sslad.__file__).parent
    naming = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                    if "dali_pipes" in p.read_text() and "import" in p.read_text() and p.parent.name != "dali_pipes"
                    and any("sslad.dali_pipes" in line and "import" in line for line in p.read_text().splitlines()))
    assert naming == ["synth/backends.py"]
