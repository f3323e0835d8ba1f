"""Races on the running stack that need more than the notebooks show: two operators' CLI runs started
together must land each event once.

The nine failure drills themselves run once per session, under nbval: drills 1-6 in notebook 06 and
7-9 in notebook 10, each drill a cell of its own (a failure names it); each notebook's last cell asserts
that every drill recovered and every invariant holds, and notebook 06's that drill 4's runs really
raced (at least one lost race retried). Running them here as well cost minutes and proved nothing more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import ROOT, Settings
from lib.medallion.invariants import kafka_accounted, offsets_tile
from lib.medallion.spark import spark_session
from lib.medallion.tables import BRONZE_EVENTS, BRONZE_OFFSETS
from lib.traffic.produce import produce
from lib.workbook import drills

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark(live_stack: Settings):
    return spark_session(live_stack)


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
