"""Airflow's own scheduler, dag-processor and api-server run the DAGs, driven through its REST API.

`python -m lib airflow up` on a home of this module's own: a Bronze run triggered through /api/v2
succeeds and is recorded in the run history as Airflow's; with Kafka stopped, a Bronze run fails its
three tries (read back through the API with their times and the runner's error in each try's log) and
alerts once; Airflow stops cleanly.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lib import stack
from lib.config import Settings
from lib.jobs.airflow_rest import AirflowRest
from lib.jobs.history import RunHistory
from lib.stack.airflow import airflow_services
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration


def last_quarter(back: int = 0) -> tuple[datetime, datetime]:
    """A full quarter hour, the last one or `back` before it: a manual Bronze run's data interval (its
    tasks render it). Airflow keeps one run per DAG and logical date, so each test takes its own."""
    now = datetime.now(UTC)
    end = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - timedelta(minutes=15 * back)
    return end - timedelta(minutes=15), end


@pytest.fixture(scope="module")
def api(live_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, AirflowRest]]:
    """Airflow up with a home (its own STACK_HOME), a run history and alerts of this module's own; stopped
    after. Yields the stack's settings with that run history, and the REST client."""
    cfg = replace(live_stack, runs_dir=tmp_path_factory.mktemp("airflow-runs"))
    home = replace(cfg, stack_home=tmp_path_factory.mktemp("airflow-stack"))
    # Read by every Airflow process and the tasks it runs: retries a second apart, no timetable runs
    # (manual runs only, so each run here is the one the test triggered), this module's run history.
    before = dict(os.environ)
    os.environ.update({"WORKBOOK_RETRY_DELAY_S": "1", "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                       "RUNS_DIR": str(cfg.runs_dir)})
    names = [s.name for s in airflow_services(home)]
    try:
        stack.up(home, names, quiet=True)
        client = AirflowRest(home)
        client.wait_for_dag("bronze")
        yield cfg, client
    finally:
        stack.down(home, names)
        os.environ.clear()
        os.environ.update(before)


def test_a_bronze_run_triggered_through_the_rest_api_succeeds_and_is_in_the_history(
        api: tuple[Settings, AirflowRest]) -> None:
    cfg, client = api
    produce(cfg, 100, seed=uuid.uuid4().int % 10**9, progress=False, save=False)
    run_id = f"rest-{uuid.uuid4().hex[:8]}"
    start, end = last_quarter()
    client.trigger("bronze", run_id, {}, logical_date=start, interval=(start, end))
    run = client.wait_for_run("bronze", run_id, timeout_s=300)
    (task,) = client.task_instances("bronze", run_id)
    assert run["state"] == "success", "\n".join(client.log("bronze", run_id, task["task_id"], task["try_number"])[-25:])
    assert (task["task_id"], task["state"], task["try_number"]) == ("run_bronze", "success", 1)
    history = RunHistory(cfg).frame("bronze")
    assert list(history.runner) == [f"airflow {run_id}"] and list(history.status) == ["succeeded"]


def test_with_kafka_stopped_a_bronze_run_fails_three_tries_then_alerts_once(api: tuple[Settings, AirflowRest]) -> None:
    cfg, client = api
    run_id = f"kafka-down-{uuid.uuid4().hex[:8]}"
    stack.down(cfg, ["kafka"])
    try:
        start, end = last_quarter(back=1)
        client.trigger("bronze", run_id, {}, logical_date=start, interval=(start, end))
        run = client.wait_for_run("bronze", run_id, timeout_s=300)
    finally:
        stack.up(cfg, ["kafka"], quiet=True)
    assert run["state"] == "failed"
    tries = client.tries("bronze", run_id, "run_bronze")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all(a["end_date"] <= b["start_date"] for a, b in itertools.pairwise(tries))
    for attempt in tries:
        lines = client.log("bronze", run_id, "run_bronze", attempt["try_number"])
        assert any("The stack is not running: kafka" in line for line in lines), lines[-10:]
    alerts = [json.loads(line) for line in (cfg.runs_dir / "alerts.log").read_text().splitlines()
              if "delivery" not in line]
    assert [(a["job"], a["attempts"]) for a in alerts] == [("bronze", 3)]
