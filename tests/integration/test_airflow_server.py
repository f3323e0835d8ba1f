"""Airflow's own scheduler, dag-processor and api-server run the DAGs, driven through its REST API.

`python -m lib airflow up` on a home of this module's own. Silver triggered over three past days waits
in its sensor until a Bronze backfill, triggered with conf through /api/v2, lands them; `backfill create`
of Gold over those days makes one run per day, each recorded once with its interval in the run history.
Airflow stops cleanly.

Kafka stopped under Airflow (three tries read back through the API with each try's error, one alert, a
catch-up run landing the backlog) is notebook 06's drill 4, which nbval runs with the other notebooks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lib import stack
from lib.config import Settings
from lib.jobs.airflow_rest import ENDED, AirflowRest
from lib.jobs.history import RunHistory
from lib.medallion.bronze import committed_positions
from lib.medallion.spark import spark_session
from lib.medallion.tables import BRONZE_OFFSETS, create_tables
from lib.plumbing.waits import poll
from lib.stack.airflow import airflow_services
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(live_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, AirflowRest]]:
    """Airflow up with a home (its own STACK_HOME), a run history and alerts of this module's own; stopped
    after. Yields the stack's settings with that run history, and the REST client."""
    cfg = replace(live_stack, runs_dir=tmp_path_factory.mktemp("airflow-runs"))
    home = replace(cfg, stack_home=tmp_path_factory.mktemp("airflow-stack"))
    # Read by every Airflow process and the tasks it runs: retries a second apart, no timetable runs
    # (manual runs only, so each run here is the one the test triggered), this module's run history.
    before = dict(os.environ)
    os.environ.update({"WORKBOOK_RETRY_DELAY_S": "1", "WORKBOOK_WAIT_POKE_S": "5",
                       "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
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


def why(client: AirflowRest, dag_id: str, run_id: str) -> str:
    """Each task's state and the end of its last try's log: what a failed assertion shows."""
    told = []
    for task in client.task_instances(dag_id, run_id):
        lines = client.log(dag_id, run_id, task["task_id"], max(task["try_number"], 1)) if task["try_number"] else []
        told.append(f"{task['task_id']}: {task['state']} (try {task['try_number']})\n  " + "\n  ".join(lines[-20:]))
    return "\n".join(told)


def days_ago(first: int, count: int) -> list[datetime]:
    """`count` consecutive UTC midnights, the first `first` days before today's."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=first - k) for k in range(count)]


def test_silver_waits_for_a_bronze_backfill_then_a_gold_backfill_lands_three_days(
        api: tuple[Settings, AirflowRest]) -> None:
    """Trigger Silver over three past days: its sensor waits, since no Bronze run covers them. Trigger
    Bronze with conf (a backfill of those days) through the REST API: it succeeds, the sensor is released
    and Silver runs. Then `backfill create` of Gold over the three days: one run per day, each waiting
    for Silver's runs (covered) and recorded once in the run history with its own interval."""
    cfg, client = api
    produce(cfg, 100, seed=uuid.uuid4().int % 10**9, progress=False, save=False)
    first, second, third = days_ago(5, 3)
    end = third + timedelta(days=1)
    window = {"start_date": first.isoformat(), "end_date": end.isoformat()}
    silver_run = f"silver-{uuid.uuid4().hex[:8]}"
    client.trigger("silver", silver_run, window, logical_date=first, interval=(first, end))
    def sensor_says() -> str:  # the sensor's log so far (it pokes in place: its state stays "running")
        states = {t["task_id"]: t["state"] for t in client.task_instances("silver", silver_run)}
        if states.get("wait_for_bronze") != "running":
            return f"states: {states}"
        return "\n".join(client.log("silver", silver_run, "wait_for_bronze", 1))

    poll(sensor_says, until=lambda told: "bronze does not cover yet" in told, timeout_s=180, every_s=2,
         timed_out=lambda told: AssertionError(f"Silver's sensor never waited: {told[-2000:]}"))

    spark = spark_session(cfg)
    create_tables(spark)  # on a fresh stack this module may be the first to touch Bronze
    committed = committed_positions(spark, cfg.events_topic)
    bronze_run = f"bronze-{uuid.uuid4().hex[:8]}"
    client.trigger("bronze", bronze_run, {"backfill": True, **window}, logical_date=first, interval=(first, end))
    bronze = client.wait_for_run("bronze", bronze_run, timeout_s=300)
    (task,) = client.task_instances("bronze", bronze_run)
    assert bronze["state"] == "success", why(client, "bronze", bronze_run)
    assert (task["task_id"], task["state"], task["try_number"]) == ("run_bronze", "success", 1)
    # the task's log tells the run as it went: each cell, the notebook's own output, its figures, where it is kept
    told = "\n".join(client.log("bronze", bronze_run, "run_bronze", 1))
    assert "Executing Cell 3---" in told and "bronze recorded: " in told and "records_read=" in told, told[-3000:]
    assert f"bronze: ok (attempt 1); executed notebook kept at {cfg.runs_dir}/" in told
    spark.catalog.refreshTable(BRONZE_OFFSETS)  # a backfill leaves the incremental position alone
    assert committed_positions(spark, cfg.events_topic) == committed
    silver = client.wait_for_run("silver", silver_run, timeout_s=300)
    assert silver["state"] == "success", why(client, "silver", silver_run)
    waited = {t["task_id"]: t for t in client.task_instances("silver", silver_run)}
    assert waited["wait_for_bronze"]["state"] == "success" and waited["run_silver"]["state"] == "success"

    history = RunHistory(cfg)
    landed = history.frame()
    assert [(r.job, r.runner, r.status) for r in landed.itertuples()] == [
        ("bronze", f"airflow {bronze_run}", "succeeded"), ("silver", f"airflow {silver_run}", "succeeded")]

    backfill = client.backfill("gold", first, third)
    runs = poll(lambda: client.runs("gold", run_type="backfill"), timeout_s=600, every_s=3,
                until=lambda found: len(found) == 3 and all(r["state"] in ENDED for r in found),
                timed_out=lambda found: AssertionError(f"backfill {backfill['id']}: {[r['state'] for r in found]}"))
    assert [r["state"] for r in runs] == ["success"] * 3, "\n".join(why(client, "gold", r["dag_run_id"]) for r in runs)
    gold = history.frame("gold")
    assert sorted(zip(gold.interval_start, gold.interval_end, gold.status, strict=True)) == [
        (day.isoformat(), (day + timedelta(days=1)).isoformat(), "succeeded") for day in (first, second, third)]
    assert set(gold.runner) == {f"airflow {r['dag_run_id']}" for r in runs}
