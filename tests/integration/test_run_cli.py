"""`python -m lib run`: papermill executes the layer notebook, keeps the copy, and the exit code tells."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lib.config import ROOT, Settings
from lib.jobs.runner import recorded
from lib.medallion.bronze import run_bronze
from lib.medallion.spark import spark_session
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


def test_a_backfill_ahead_of_the_incremental_runs_passes_its_check_and_the_next_run_inserts_no_event(
        live_stack: Settings) -> None:
    """An operator recovering from an outage backfills before any incremental run has read the batch:
    the backfill lands the events of its window and its own invariants pass (exit 0); the incremental
    run then reads the same records, inserts none of the events the backfill landed (only those whose
    event_time lies outside the window: invalid events) and keeps the dead letters (a backfill keeps none)."""
    run_bronze(spark_session(live_stack), live_stack)  # what earlier tests left on the topic: not this test's
    seed = random.SystemRandom().randrange(10**9)  # events no earlier session of this stack has landed
    manifest = produce(live_stack, 300, seed=seed, progress=False, save=False)
    start = (datetime.fromisoformat(manifest.first_event_time) - timedelta(days=1)).isoformat()
    end = (datetime.fromisoformat(manifest.last_event_time) + timedelta(minutes=1)).isoformat()
    backfill = run_cli("bronze", "--backfill", "--start", start, "--end", end)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    landed = recorded(kept_notebook(backfill.stdout))
    assert landed["events_inserted"] > 0 and landed["dead_letters_inserted"] == 0
    incremental = run_cli("bronze")
    assert incremental.returncode == 0, incremental.stderr[-3000:]
    caught_up = recorded(kept_notebook(incremental.stdout))
    assert caught_up["records_read"] == manifest.records
    assert landed["events_inserted"] + caught_up["events_inserted"] == manifest.requests + manifest.invalid_events
    assert caught_up["events_inserted"] <= manifest.invalid_events
    assert caught_up["dead_letters_inserted"] == manifest.malformed_total
