"""`python -m lib schedule` on the real stack: the runs a range calls for, and an outage that is retried,
alerted and caught up. Each test keeps its history in its own RUNS_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lib import stack
from lib.config import ROOT, Settings
from lib.jobs.history import RunHistory
from lib.medallion.invariants import check_all, silver_covers
from lib.medallion.spark import spark_session

pytestmark = pytest.mark.integration
RANGE = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T02:00:00Z")
LATER = ("--from", "2026-01-01T02:00:00Z", "--to", "2026-01-01T03:00:00Z")
CAUGHT_UP = (datetime(2026, 1, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, 3, tzinfo=UTC))


def lib_cli(runs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "RUNS_DIR": str(runs)}, timeout=1200, check=False)


def test_two_hours_run_bronze_then_two_silver_hours_and_no_gold(live_stack: Settings, tmp_path: Path) -> None:
    out = lib_cli(tmp_path, "schedule", *RANGE, "--retry-delay", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    history = RunHistory(replace(live_stack, runs_dir=tmp_path)).frame()
    assert set(history.status) == {"succeeded"}
    assert list(history.job) == ["bronze", "silver", "silver"]
    silver = history[history.job == "silver"]
    assert [s[11:16] for s in silver.interval_start] == ["00:00", "01:00"]
    for notebook in history.notebook:
        assert (ROOT / notebook).exists() and notebook.endswith("/attempt-1.ipynb")
    listing = lib_cli(tmp_path, "runs").stdout.splitlines()
    assert [line.split()[0] for line in listing[2:]] == ["bronze", "silver", "silver"]
    # Nothing is due again: a second invocation over the same range runs nothing.
    again = lib_cli(tmp_path, "schedule", *RANGE)
    assert again.returncode == 0 and "0 runs" in again.stdout


def test_kafka_down_is_retried_then_alerted_and_the_next_invocation_catches_up(live_stack: Settings,
                                                                                tmp_path: Path) -> None:
    stack.down(live_stack, ["kafka"])
    try:
        down = lib_cli(tmp_path, "schedule", *LATER, "--retry-delay", "1")
    finally:
        stack.up(live_stack, ["kafka"], quiet=True)
    assert down.returncode == 1
    history = RunHistory(replace(live_stack, runs_dir=tmp_path)).frame()
    assert list(zip(history.job, history.attempt, history.status, strict=True)) == [
        ("bronze", 1, "failed"), ("bronze", 2, "failed"), ("bronze", 3, "failed")]
    logged = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    alerts = [a for a in logged if not a["job"].startswith("freshness:")]  # a stale layer is its own alert
    assert len(alerts) == 1 and alerts[0]["job"] == "bronze" and alerts[0]["attempts"] == 3
    assert "ALERT: bronze" in down.stderr and "silver" in down.stdout  # the dependant waited

    back = lib_cli(tmp_path, "schedule", *LATER, "--retry-delay", "1")
    assert back.returncode == 0, back.stderr[-3000:]
    caught_up = RunHistory(replace(live_stack, runs_dir=tmp_path)).frame().iloc[3:]
    assert list(zip(caught_up.job, caught_up.status, strict=True)) == [("bronze", "succeeded"), ("silver", "succeeded")]
    # Every record of Kafka in Bronze once; every Bronze row of the caught-up hour in Silver or rejected.
    spark = spark_session(live_stack)
    checks = [*check_all(spark, live_stack, layers=("bronze",)), silver_covers(spark, *CAUGHT_UP)]
    assert all(c.ok for c in checks), checks
