"""`python -m lib run`: papermill executes the layer notebook, keeps the copy, and the exit code tells."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import ROOT, Settings
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", "run", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=900, check=False)


def kept_notebook(stdout_or_err: str) -> Path:
    """The executed notebook the CLI names (relative to the repository)."""
    return ROOT / stdout_or_err.strip().split("kept at ")[-1].strip()


def test_run_silver_with_an_interval_keeps_the_executed_notebook(live_stack: Settings) -> None:
    out = run_cli("silver", "--start", "2000-01-01", "--end", "2100-01-01")
    assert out.returncode == 0, out.stderr[-2000:]
    executed = kept_notebook(out.stdout)
    assert executed.name == "04_silver.ipynb" and executed.parent.parent == ROOT / "runs"
    text = executed.read_text()
    assert '"INTERVAL_START": "2000-01-01T00:00:00+00:00"' in text or "INTERVAL_START = \\\"2000-01-01" in text


def test_a_crashing_run_exits_non_zero_and_a_rerun_recovers(live_stack: Settings) -> None:
    produce(live_stack, 200, seed=424242, progress=False, save=False)
    crashed = run_cli("bronze", env={"WORKBOOK_CRASH_AT": "bronze.before_offsets"})
    assert crashed.returncode == 1
    assert "InjectedCrash" in crashed.stderr and "kept at" in crashed.stderr
    assert kept_notebook(crashed.stderr).exists()
    recovered = run_cli("bronze")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
