"""Airflow 3.3.2's `airflow dags test` runs a DAG of dags/ in-process (no scheduler, no api-server), the
way `python -m lib airflow dags test …` lets an operator try one without starting Airflow: its tasks run
the project's runner in .venv and its sensor asks the run history.

Airflow's own scheduler running the DAGs (the chain, backfills, retries and the alert) is notebook 09
and notebook 10's drill 7, which nbval runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from subprocess import CompletedProcess

import pytest

from lib.config import Settings
from lib.jobs.airflow import airflow
from lib.jobs.history import RunHistory

pytestmark = pytest.mark.integration
Airflow = Callable[..., CompletedProcess]


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


def test_silver_waits_for_bronze_to_cover_its_hour(runs: tuple[Settings, Airflow]) -> None:
    cfg, run = runs
    long_ago = datetime(2026, 1, 1, 4, tzinfo=UTC)  # no Bronze run covers that hour
    waited = run("dags", "test", "silver", long_ago.isoformat())
    assert waited.returncode != 0
    assert "bronze does not cover yet" in waited.stdout + waited.stderr
    assert RunHistory(cfg).frame("silver")["interval_end"].tolist().count(long_ago.isoformat()) == 0
