"""Airflow 3.3.2 runs the DAGs in dags/ against the embedded stack, for real: `airflow dags test`
executes every task in-process (no scheduler, no webserver) with its retries and callbacks, and
records its runs in Airflow's SQLite database; the tasks run the project's runner in .venv.

Bronze for a quarter hour, then Silver for the hour and Gold for the day that hold it; a Bronze
task with Kafka stopped, retried twice, then alerting; a backfill through the seed's params.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from subprocess import CompletedProcess

import pytest

from lib import stack
from lib.config import Settings
from lib.jobs.airflow import airflow
from lib.jobs.history import RunHistory
from lib.medallion.bronze import committed_positions
from lib.medallion.invariants import check_all, manifest_reconciled
from lib.medallion.spark import spark_session
from lib.medallion.tables import BRONZE_EVENTS, BRONZE_OFFSETS
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration
#: Skips the waits on upstream runs: each DAG is tested alone here (the waits have a test of their own).
NO_WAIT = ["--mark-success-pattern", "wait_for_.*"]

Airflow = Callable[..., CompletedProcess]


def _next(moment: datetime, every: timedelta) -> datetime:
    """The first boundary of this cadence after `moment`: a manual run for it covers [it - every, it)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // every + 1) * every


@pytest.fixture(scope="module")
def runs(live_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Airflow]:
    """Airflow with a home and a run history of this module's own (SQLite, migrated on first use)."""
    home = tmp_path_factory.mktemp("airflow-home")
    runs_dir = tmp_path_factory.mktemp("airflow-runs")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "RUNS_DIR": str(runs_dir), "WORKBOOK_RETRY_DELAY_S": "1", "WORKBOOK_WAIT_TIMEOUT_S": "4",
           "WORKBOOK_WAIT_POKE_S": "2"}
    cfg = replace(live_stack, runs_dir=runs_dir)

    def run(*args: str) -> CompletedProcess:
        return airflow(cfg, list(args), env=env, capture=True)

    migrated = run("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return cfg, run


def _ok(done: CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_bronze_then_silver_for_its_hour_then_gold_for_its_day(runs: tuple[Settings, Airflow]) -> None:
    cfg, run = runs
    manifest = produce(cfg, 300, seed=random.SystemRandom().randrange(10**9), progress=False, save=False)
    quarter = _next(datetime.now(UTC), timedelta(minutes=15))
    _ok(run("dags", "test", "bronze", quarter.isoformat()))
    # Silver's hour is the one Bronze's run ingested the batch in (by its ingested_at, however near
    # the hour's end the run started): the newest ingestion in Bronze is this run's.
    spark = spark_session(cfg)
    ingested = spark.sql(f"SELECT CAST(max(ingested_at) AS STRING) FROM {BRONZE_EVENTS}").first()[0]  # UTC
    hour = _next(datetime.fromisoformat(ingested).replace(tzinfo=UTC), timedelta(hours=1))
    _ok(run("dags", "test", "silver", hour.isoformat(), *NO_WAIT))
    _ok(run("dags", "test", "gold", _next(hour - timedelta(seconds=1), timedelta(days=1)).isoformat(), *NO_WAIT))
    history = RunHistory(cfg).frame()
    assert list(zip(history.job, history.status, history.attempt, strict=True)) == [
        ("bronze", "succeeded", 1), ("silver", "succeeded", 1), ("gold", "succeeded", 1)]
    assert history.interval_end.tolist()[:2] == [quarter.isoformat(), hour.isoformat()]
    reconciled = manifest_reconciled(spark, cfg, manifest.to_dict())
    assert reconciled.ok, reconciled.detail
    failed = [c for c in check_all(spark, cfg) if not c.ok]
    assert not failed, failed


def test_silver_waits_for_bronze_to_cover_its_hour(runs: tuple[Settings, Airflow]) -> None:
    cfg, run = runs
    long_ago = datetime(2026, 1, 1, 4, tzinfo=UTC)  # no Bronze run covers that hour
    waited = run("dags", "test", "silver", long_ago.isoformat())
    assert waited.returncode != 0
    assert "bronze does not cover yet" in waited.stdout + waited.stderr
    assert RunHistory(cfg).frame("silver")["interval_end"].tolist().count(long_ago.isoformat()) == 0


def test_a_bronze_task_with_kafka_stopped_is_retried_twice_then_alerts(runs: tuple[Settings, Airflow]) -> None:
    cfg, run = runs
    quarter = datetime(2026, 1, 2, 0, 15, tzinfo=UTC)
    stack.down(cfg, ["kafka"])
    try:
        failed = run("dags", "test", "bronze", quarter.isoformat())
    finally:
        stack.up(cfg, ["kafka"], quiet=True)
    assert failed.returncode != 0
    tries = RunHistory(cfg).frame("bronze")
    tries = tries[tries.interval_end == quarter.isoformat()]
    assert tries.attempt.tolist() == [1, 2, 3] and set(tries.status) == {"failed"}
    assert all("kafka" in error for error in tries.error)
    alerts = [json.loads(line) for line in (cfg.runs_dir / "alerts.log").read_text().splitlines()]
    bronze = [a for a in alerts if a["job"] == "bronze"]  # (Silver's timed-out wait above alerted too)
    assert [(a["attempts"], a["interval"]) for a in bronze] == [
        (3, f"[{(quarter - timedelta(minutes=15)).isoformat()}, {quarter.isoformat()})")]


def test_a_backfill_through_the_params_changes_no_committed_offset(runs: tuple[Settings, Airflow]) -> None:
    cfg, run = runs
    spark = spark_session(cfg)
    before = committed_positions(spark, cfg.events_topic)
    start, end = datetime.now(UTC) - timedelta(hours=3), datetime.now(UTC)
    conf = {"backfill": True, "start_date": start.isoformat(), "end_date": end.isoformat()}
    _ok(run("dags", "test", "bronze", _next(end, timedelta(minutes=15)).isoformat(), "--conf", json.dumps(conf)))
    spark.catalog.refreshTable(BRONZE_OFFSETS)
    assert committed_positions(spark, cfg.events_topic) == before
    last = RunHistory(cfg).frame("bronze").iloc[-1]
    assert (last.status, last.interval_start, last.interval_end) == ("succeeded", start.isoformat(), end.isoformat())
