"""The layers of lib/ as `make lint` enforces them (pyproject.toml's import-linter contracts): kept on
the code as it is, and broken by one upward import, so the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lib.config import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy's lib/, not the checkout's
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "lib", tree / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_layers_are_kept(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0 and "2 kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_an_upward_import_breaks_them(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    events = tree / "lib" / "contract" / "events.py"
    events.write_text(events.read_text() + "\nfrom lib.medallion import tables  # the contract reaching up\n")
    silver = tree / "lib" / "medallion" / "silver.py"
    silver.write_text(silver.read_text() + "\nfrom lib.service import api  # the pipeline reaching the service\n")
    done = _lint(tree)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "lib's layers BROKEN" in done.stdout and "lib.contract.events -> lib.medallion.tables" in done.stdout
    assert "the pipeline never imports the web service BROKEN" in done.stdout
