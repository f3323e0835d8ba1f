"""The same jobs with configuration changed only: the warehouse on the S3 server, Bronze, Silver and
Gold on the Spark standalone cluster, the stream on two Flink taskmanagers.

Run by `make test` as its own session (`make test-cluster`), with WAREHOUSE=s3 CLUSTER=1 and a
STACK_HOME of its own, after the default session has stopped its stack (the ports are the same).
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyarrow import fs

from lib import stack
from lib.config import Settings
from lib.jobs.maintain import maintain_warehouse
from lib.medallion import storage
from lib.medallion.bronze import run_bronze
from lib.medallion.catalog import catalog
from lib.medallion.gold import run_gold
from lib.medallion.invariants import check_all
from lib.medallion.maintenance import Policy, remove_orphans_now
from lib.medallion.silver import run_silver
from lib.medallion.spark import spark_session
from lib.medallion.tables import BRONZE_DEAD_LETTER, BRONZE_EVENTS, GOLD_DAILY, SILVER_EVENTS, SILVER_REJECTED
from lib.stack.s3 import s3_filesystem
from lib.stack.spark import master_state
from lib.stream.job import CONSOLE_TAG
from lib.stream.rest import FlinkRest
from lib.traffic.produce import produce
from lib.workbook.drills import flink_taskmanager_killed, new_salt

pytestmark = pytest.mark.integration
TABLES = (BRONZE_EVENTS, BRONZE_DEAD_LETTER, SILVER_EVENTS, SILVER_REJECTED, GOLD_DAILY)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
#: The cluster mode's memory budget for every process of the stack (children included).
MEMORY_BUDGET = 6 * 2**30
APPS: list[str] = []  # the Spark applications this module ran on the master


@pytest.fixture(scope="module")
def cluster(live_stack: Settings) -> Settings:
    assert live_stack.warehouse == "s3" and live_stack.cluster and live_stack.spark_master.startswith("spark://"), (
        "these tests need the S3 and cluster modes: run them with `make test-cluster` "
        "(WAREHOUSE=s3 CLUSTER=1 and a STACK_HOME of their own)")
    return live_stack


@pytest.fixture(scope="module")
def spark(cluster: Settings):
    session = spark_session(cluster, app_name="cluster-tests")
    APPS.append(session.sparkContext.applicationId)
    return session


def _objects(cfg: Settings) -> list[str]:
    store = s3_filesystem(cfg)
    return [i.path for i in store.get_file_info(fs.FileSelector(cfg.s3_bucket, recursive=True))
            if i.type == fs.FileType.File]


def test_the_medallion_runs_on_the_spark_cluster_with_its_warehouse_on_s3(cluster: Settings, spark) -> None:
    assert master_state(cluster)["aliveworkers"] == 1
    manifest = produce(cluster, 1500, seed=random.SystemRandom().randrange(10**9), progress=False, save=False)
    bronze = run_bronze(spark, cluster)
    run_silver(spark, *EVER)
    run_gold(spark, *EVER)
    assert bronze.events_inserted == manifest.distinct_events
    assert bronze.dead_letters_inserted == manifest.malformed_total
    assert spark.table(SILVER_EVENTS).count() >= manifest.requests
    failed = [c for c in check_all(spark, cluster) if not c.ok]
    assert not failed, failed
    # The executors ran on the worker, not in the driver.
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    assert executors >= 1
    # Every table lives in the bucket: metadata and data files, listed through the S3 API.
    objects = _objects(cluster)
    lake = catalog(cluster)
    for table in TABLES:
        location = lake.load_table(table).location()
        assert location.startswith(f"s3://{cluster.s3_bucket}/"), location
        prefix = location.removeprefix("s3://")
        mine = [o for o in objects if o.startswith(prefix + "/")]
        assert any(o.endswith(".metadata.json") for o in mine), (table, mine[:5])
        assert any(o.endswith(".parquet") for o in mine), (table, mine[:5])
    # PyIceberg reads the same rows back through S3FileIO.
    assert len(lake.load_table(BRONZE_EVENTS).scan().to_arrow()) == spark.table(BRONZE_EVENTS).count()
    local = cluster.stack_home / "warehouse"
    assert not local.exists() or not any(p.is_file() for p in Path(local).rglob("*"))


def test_maintenance_compacts_a_closed_day_on_s3_and_keeps_a_young_unreferenced_object(cluster: Settings,
                                                                                      spark) -> None:
    """The maintain job with the scheduled policy on the bucket: two small Bronze runs on a day three days
    back become one file, the orphan listing goes through S3FileIO, and an unreferenced object written a
    moment ago (as a running writer's would be) stays; every invariant and row count is unchanged. Then
    notebook 06's drill 1 clean-up in S3 mode: the object listed, unreferenced, removed by the action."""
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
    sent = produce(cluster, 400, seed=random.SystemRandom().randrange(10**9), start=day, progress=False, save=False)
    for _ in range(2):
        run_bronze(spark, cluster, max_records=sent.records // 2 + 1)
    run_silver(spark, *EVER)
    run_gold(spark, *EVER)
    location = catalog(cluster).load_table(BRONZE_EVENTS).location().removeprefix("s3://")
    young = f"{location}/data/event_date={day.date()}/in-flight-{uuid.uuid4().hex}.parquet"
    store = s3_filesystem(cluster)
    with store.open_output_stream(young) as out:
        out.write(b"a writer's file, not committed yet")
    files = f"SELECT file_count FROM {BRONZE_EVENTS}.partitions WHERE partition.event_date = DATE '{day.date()}'"
    assert spark.sql(files).first().file_count >= 2
    reports = maintain_warehouse(spark, cluster, Policy.of(cluster), datetime.now(UTC))
    assert spark.sql(files).first().file_count == 1
    assert store.get_file_info(young).type == fs.FileType.File
    assert all(r.before.rows == r.after.rows for r in reports) and sum(r.orphans_removed for r in reports) == 0
    # Drill 1's view of the bucket: the object is listed through the S3 API and named by no snapshot; the
    # orphan action with the age rule at "now" (the drill's quiet moment) deletes it and nothing else.
    where = storage.location(cluster, BRONZE_EVENTS)
    assert young in storage.data_files(cluster, where) and young not in storage.referenced(spark, BRONZE_EVENTS)
    removed = remove_orphans_now(spark, cluster, BRONZE_EVENTS, datetime.now(UTC) + timedelta(seconds=1))
    assert [storage.key(uri) for uri in removed] == [young]
    assert store.get_file_info(young).type == fs.FileType.NotFound
    failed = [c for c in check_all(spark, cluster) if not c.ok]
    assert not failed, failed


def test_the_stream_spreads_over_two_taskmanagers_and_one_killed_loses_and_doubles_nothing(
        cluster: Settings, spark) -> None:
    flink = FlinkRest(cluster)
    managers = flink.taskmanagers()
    assert len(managers) == 2 and all(m["slotsNumber"] == 2 for m in managers)
    drill = flink_taskmanager_killed(spark, cluster, new_salt())
    assert drill.evidence["taskmanagers running the job"] == 2
    assert drill.recovered, drill.table().to_string()
    # The console sink ran as two subtasks (`roman-stream:1> `, `:2> `); the helper reads every taskmanager.
    lines = flink.console_lines(CONSOLE_TAG, last=None)
    assert lines and all(re.match(rf"{CONSOLE_TAG}:[12]> ", line) for line in lines), lines[:3]


def test_the_stack_stays_within_its_memory_budget(cluster: Settings) -> None:
    used = stack.memory_bytes(cluster)
    print(stack.format_status(stack.status(cluster)))
    assert {"spark-master", "spark-worker", "flink-taskmanager-2", "s3"} <= set(used)
    assert sum(used.values()) < MEMORY_BUDGET, {k: f"{v / 2**20:.0f} MiB" for k, v in used.items()}


def test_the_master_lists_every_application_as_completed(cluster: Settings, spark) -> None:
    spark.stop()
    state = master_state(cluster)
    completed = {app["id"]: app for app in state["completedapps"]}
    assert APPS and set(APPS) <= set(completed), (APPS, list(completed))
    assert all(completed[a]["state"] == "FINISHED" and completed[a]["cores"] >= 1 for a in APPS)
    assert not [a for a in state["activeapps"] if a["id"] in APPS]

