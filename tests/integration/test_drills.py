"""The failure drills of notebook 06 as tests: each breaks something for real on the running stack
and must recover with every figure as expected and every invariant holding.

Drills 4 (Kafka down under the scheduler) and 5 (a killed taskmanager, Spark covering the gap) run
in notebook 06 under nbval, whose last cell asserts every drill recovered; test_scheduler.py's outage
test and test_stream.py's restore test cover the same failures in more depth.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib import drills
from lib.config import ROOT, Settings
from lib.medallion.invariants import kafka_accounted, offsets_tile
from lib.medallion.spark import spark_session
from lib.medallion.tables import BRONZE_EVENTS, BRONZE_OFFSETS
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark(live_stack: Settings):
    return spark_session(live_stack)


def assert_recovered(drill: drills.Drill) -> None:
    assert drill.recovered, f"drill {drill.number} did not recover:\n{drill.table().to_string()}\n{drill.errors}"


@pytest.mark.parametrize("run", [
    drills.bronze_killed_mid_write,
    drills.bronze_crash_after_commit,
    drills.silver_and_gold_fail_then_retry,
    drills.bad_input_burst,
    drills.late_event_after_gold,
    drills.bounded_backlog,
], ids=lambda f: f.__name__)
def test_drill_recovers(spark, live_stack: Settings, run) -> None:
    assert_recovered(run(spark, live_stack, drills.new_salt()))


def test_two_runs_of_each_layer_at_once_leave_every_row_once(spark, live_stack: Settings, tmp_path: Path) -> None:
    drill = drills.two_runs_at_once(spark, live_stack, drills.new_salt(), tmp_path)
    assert_recovered(drill)
    assert drill.evidence["races lost and retried"] >= 1  # the race really happened


def test_two_cli_bronze_runs_started_together_land_each_event_once(spark, live_stack: Settings,
                                                                    tmp_path: Path) -> None:
    """As an operator would: two `python -m lib run bronze` over the same new records, held at the
    same point before their MERGE so that neither can see the other's commit."""
    salt = drills.new_salt()
    cfg = drills.drill_cfg(live_stack, 60, salt)
    manifest = produce(cfg, 500, seed=160, salt=salt, progress=False, save=False)
    env = {**os.environ, "EVENTS_TOPIC": cfg.events_topic, "RUNS_DIR": str(tmp_path),
           "WORKBOOK_RENDEZVOUS": f"bronze.before_events@{tmp_path / 'meet'}#2"}
    runs = [subprocess.Popen([sys.executable, "-m", "lib", "run", "bronze"], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outs]
    assert len(list((tmp_path / "meet").iterdir())) == 2  # both reached the MERGE before either committed
    for table in (BRONZE_EVENTS, BRONZE_OFFSETS):
        spark.catalog.refreshTable(table)
    held = spark.sql(f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM {BRONZE_EVENTS} "
                     f"WHERE kafka_topic = '{cfg.events_topic}'").first()
    assert held.n == held.d == manifest.distinct_events
    checks = [kafka_accounted(spark, cfg), offsets_tile(spark, cfg)]
    assert all(c.ok for c in checks), checks
