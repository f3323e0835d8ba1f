"""The failure drills: each breaks one thing for real and returns its evidence.

Notebook 06 runs drills 1-6, the batch layers' failures (a writer killed, a crash after a commit,
failed runs, two runs at once, bad input, a late event); notebook 10 runs drills 7-9, the outages
(Kafka down under Airflow, a Flink taskmanager killed, the backlog an outage leaves).

A drill works on a topic of its own (`drill-<n>-<salt>`) with traffic salted the same way, so
its figures are the same on a fresh stack and on one that ran the drills before, and the
events topic's tables are left to the other notebooks. Each ends as a `Drill`: what broke, its
timeline (what broke when, what the job, the scheduler or Airflow did, the recovery, with times
read back from the services where they keep them), the figures that show what the platform did
(counted from the tables, storage and Kafka, never from what a job reported) beside what they must
be, the invariants that were checked, whether it recovered, and its finding in words. Drills 1 and
7 are classes whose steps the notebook runs cell by cell, so the failure and the recovery each
have a cell of their own; the others are one call. Each notebook's last cell asserts every drill
recovered; nbval runs it in `make test`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import display
from pyspark.sql import SparkSession
from tqdm import tqdm

from lib import faults, stack
from lib.config import ROOT, Settings
from lib.contract.events import handle_request
from lib.errors import FlinkJobError, InjectedCrash, WorkbookError
from lib.jobs.airflow_rest import AirflowRest
from lib.jobs.alerts import alerts_log
from lib.jobs.history import RunHistory
from lib.jobs.registry import EPOCH
from lib.jobs.runner import RECORD_KEY
from lib.kafka import connect_producer, ensure_topic
from lib.medallion import commits, storage
from lib.medallion.bronze import run_bronze
from lib.medallion.catalog import catalog
from lib.medallion.gold import run_gold
from lib.medallion.heap import HeapPeak
from lib.medallion.invariants import (
    Invariant,
    check_all,
    gold_matches_recompute,
    kafka_accounted,
    offsets_tile,
    silver_covers,
)
from lib.medallion.maintenance import remove_orphans_now
from lib.medallion.silver import run_silver
from lib.medallion.statements import one_row, to_pandas
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    DDL,
    GOLD_DAILY,
    SILVER_EVENTS,
    SILVER_REJECTED,
    create_tables,
    time_window,
)
from lib.plumbing.waits import poll
from lib.stream import lifecycle
from lib.stream.job import STREAM_DEAD_LETTER, STREAM_EVENTS, StreamJob
from lib.stream.rest import FlinkRest
from lib.traffic.manifest import Manifest
from lib.traffic.plan import TrafficShape
from lib.traffic.produce import produce
from lib.workbook.airflow_session import AirflowSession
from lib.workbook.charts import timeline_chart
from lib.workbook.timeline import Timeline, Wrapped, wrapped


@dataclass
class Drill:
    """One drill's outcome: what broke, its timeline, the evidence, the invariants checked, recovered or not."""

    number: int
    title: str
    broke: str
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[Invariant] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    #: Tables worth a look beside the figures (the run history, the dead letters' reasons...).
    details: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Errors the drill caught as evidence (a run that failed when it should not have).
    errors: list[str] = field(default_factory=list)
    #: What broke when, what the job, the scheduler or Airflow did, and the recovery.
    timeline: Timeline = field(default_factory=Timeline)
    #: The evidence in one or two sentences a reviewer reads in the summary.
    finding: str = ""
    #: What lasted a while (an outage, a run), for the plot; and a figure sampled over the drill.
    spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    series: tuple[str, list[tuple[datetime, int]]] | None = None
    #: Moments worth a line on the plot (the kill, the restore...).
    marks: dict[str, datetime] = field(default_factory=dict)

    def at(self, who: str, what: str, detail: str = "", when: datetime | None = None) -> datetime:
        """Add an entry to the timeline (now, or `when` a service says it happened)."""
        return self.timeline.mark(who, what, detail, when)

    @property
    def recovered(self) -> bool:
        """Every invariant holds and every figure that has an expected value has it."""
        return all(c.ok for c in self.checks) and all(self.evidence.get(k) == v for k, v in self.expected.items())

    def table(self) -> pd.DataFrame:
        """The evidence beside what it should be, then the invariants."""
        rows = [(k, v, self.expected.get(k, "")) for k, v in self.evidence.items()]
        rows += [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in self.checks]
        return pd.DataFrame(rows, columns=["figure", "value", "expected"]).set_index("figure")

    def show(self) -> None:
        """The timeline, then the evidence and the invariants, long text wrapped, never cut."""
        display(wrapped(self.timeline.frame()))
        display(wrapped(self.table()))

    def plot(self) -> None:
        """The spans, the marks (and the sampled series) on one time axis."""
        timeline_chart(self.timeline, self.spans, self.marks, f"drill {self.number}: {self.title}", self.series)

    def summary(self) -> dict[str, Any]:
        return {"drill": f"{self.number}. {self.title}", "what broke": self.broke,
                "recovered": "yes" if self.recovered else "no", "evidence": self.finding}


def new_salt() -> int:
    """A fresh salt: new topics and event_ids for this execution, the same counts as every other."""
    return random.SystemRandom().getrandbits(63)


def drill_cfg(cfg: Settings, number: int, salt: int) -> Settings:
    """The settings of drill `number`: its own topic (created now), everything else shared."""
    topic = f"drill-{number}-{salt:x}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, cfg.events_partitions)
    return replace(cfg, events_topic=topic)


def _traffic(cfg: Settings, events: int, seed: int, salt: int, shape: TrafficShape | None = None) -> Manifest:
    return produce(cfg, events, seed=seed, salt=salt, shape=shape, progress=False, save=False)


def _landed(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """The drill topic's rows in Bronze, and event_ids held more than once."""
    topic = cfg.events_topic
    row = one_row(spark.sql(f"""
        SELECT COUNT(*) AS events, COUNT(*) - COUNT(DISTINCT event_id) AS doubled
        FROM {BRONZE_EVENTS} WHERE kafka_topic = '{topic}'"""))
    dead = one_row(spark.sql(f"SELECT COUNT(*) AS n FROM {BRONZE_DEAD_LETTER} WHERE kafka_topic = '{topic}'"))
    return {"bronze events": row.events, "dead letters": dead.n, "doubled event_ids": row.doubled}


def _refresh(spark: SparkSession) -> None:
    """Forget cached table metadata: another process (or session) committed meanwhile."""
    for table in DDL:  # every medallion table
        spark.catalog.refreshTable(table)


def _gold_check(spark: SparkSession, since: datetime) -> Invariant:
    """Gold = a full recompute from Silver, for the keys the drill's Silver rows touched (other keys
    may wait for their own Gold run)."""
    keys = spark.table(SILVER_EVENTS).where(time_window("processed_at", since, datetime.now(UTC))) \
        .select("event_date", "user_id").distinct()
    return gold_matches_recompute(spark, keys)


def _crashed(point: str, step: Callable[[], object]) -> bool:
    """Run `step` with the crash point armed; True when it crashed there."""
    faults.crash_at(point)
    try:
        step()
    except InjectedCrash:
        return True
    finally:
        faults.crash_at(None)
    return False


def _bronze_checks(spark: SparkSession, cfg: Settings) -> list[Invariant]:
    return [kafka_accounted(spark, cfg), offsets_tile(spark, cfg)]


def _expected_bronze(manifest: Manifest) -> dict[str, int]:
    return {"bronze events": manifest.distinct_events, "dead letters": manifest.malformed_total,
            "doubled event_ids": 0}


# 1 ------------------------------------------------------------------------------------------------

#: Drill 1's Bronze driver: a Python process whose Spark JVM is its child in the same process group, so one
#: SIGKILL to the group stops the writer as a lost machine would. (`python -m lib run bronze` runs the job in
#: a Jupyter kernel, which starts a session of its own: killing papermill would leave the writer running.)
BRONZE_DRIVER = ("from lib.config import settings; from lib.medallion.bronze import run_bronze; "
                 "from lib.medallion.spark import spark_session; cfg = settings(); run_bronze(spark_session(cfg), cfg)")
BRONZE_PROCESS = [sys.executable, "-c", BRONZE_DRIVER]


class BronzeKill:
    """Drill 1 step by step, each step a cell of notebook 06: traffic on the drill's topic, a Bronze run
    started as a process, SIGKILL the moment its first new data file is in storage, what the table says
    then, the re-run, and the killed run's files removed as orphans."""

    def __init__(self, spark: SparkSession, cfg: Settings, salt: int, runs_dir: Path) -> None:
        self.spark = spark
        self.cfg = drill_cfg(cfg, 1, salt)
        self.runs_dir = runs_dir / f"drill-1-{salt:x}"
        self.drill = Drill(1, "Bronze killed mid-write", "the driver process SIGKILLed while writing data files")
        self.manifest = _traffic(self.cfg, 3000, seed=101, salt=salt)
        self.drill.at("producer", f"{self.manifest.records:,} records on the drill's topic",
                      f"{self.manifest.distinct_events:,} distinct events, {self.manifest.malformed_total} malformed")
        self.drill.expected = {"the run's exit code": -signal.SIGKILL, "of them in any snapshot's manifests": 0,
                               "newest snapshot unchanged by the kill": True,
                               "rows of the drill's topic readable after the kill": 0,
                               "records the next run read": self.manifest.records, **_expected_bronze(self.manifest)}
        create_tables(spark)  # on a fresh stack, this drill may be the first to touch Bronze
        _refresh(spark)
        self.location = storage.location(self.cfg, BRONZE_EVENTS)
        self.before = storage.data_files(self.cfg, self.location)
        self.snapshot_before = newest_snapshot(spark, BRONZE_EVENTS)
        self.child: subprocess.Popen | None = None
        self.new: dict[str, storage.StoredFile] = {}
        self.killed_at: datetime | None = None

    def start(self) -> None:
        """A Bronze driver on the drill's topic, in a process group of its own."""
        env = {**os.environ, "EVENTS_TOPIC": self.cfg.events_topic, "RUNS_DIR": str(self.runs_dir)}
        self.child = subprocess.Popen(BRONZE_PROCESS, cwd=ROOT, env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.drill.at("operator", "Bronze run started", f"pid {self.child.pid}: a driver calling run_bronze")

    def kill_at_first_file(self, timeout_s: float = 300) -> pd.DataFrame:
        """Watch the table's data files; SIGKILL the run's process group when a new one appears. Returns
        the new files as the storage listed them right after the kill."""
        assert self.child is not None, "start() first"
        child = self.child

        def new_files() -> bool:
            listed = storage.data_files(self.cfg, self.location)
            return bool(set(listed) - set(self.before)) or child.poll() is not None

        with tqdm(desc="watching Bronze's data files", unit=" listings", mininterval=5, file=sys.stderr) as bar:
            poll(lambda: bar.update() is None and new_files(), timeout_s=timeout_s, every_s=0.02,
                 timed_out=lambda _: WorkbookError(f"drill 1: the Bronze run wrote no data file in {timeout_s:.0f} s"))
        seen = self.drill.at("drill", "first new data file seen in storage")
        if child.poll() is not None:
            raise WorkbookError(f"drill 1: the Bronze run ended (exit {child.returncode}) before it was killed")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        self.killed_at = self.drill.at("drill", "SIGKILL to the run's process group",
                                       f"{(datetime.now(UTC) - seen).total_seconds() * 1000:.0f} ms after the file")
        after = storage.data_files(self.cfg, self.location)
        self.new = {k: f for k, f in after.items() if k not in self.before}
        self.drill.at("storage", f"{len(self.new)} new data file(s) in storage", ", ".join(sorted(
            f.name for f in self.new.values())))
        made = sorted(self.new.values(), key=lambda f: f.name)
        return pd.DataFrame([{"file": f.name, "bytes": f.size} for f in made])

    def after_kill(self) -> pd.DataFrame:
        """What the process, the table's snapshot log and its manifests say after the kill."""
        assert self.child is not None and self.killed_at is not None, "kill_at_first_file() first"
        _refresh(self.spark)
        snapshot = newest_snapshot(self.spark, BRONZE_EVENTS)
        listed = storage.referenced(self.spark, BRONZE_EVENTS)
        in_manifests = sum(k in listed for k in self.new)
        rows = one_row(self.spark.sql(
            f"SELECT COUNT(*) AS n FROM {BRONZE_EVENTS} WHERE kafka_topic = '{self.cfg.events_topic}'")).n
        self.drill.evidence.update({
            "the run's exit code": self.child.returncode,
            "new data files left by the kill": len(self.new),
            "of them in any snapshot's manifests": in_manifests,
            "newest snapshot unchanged by the kill": snapshot == self.snapshot_before,
            "rows of the drill's topic readable after the kill": rows})
        self.drill.at("table", "snapshot log unchanged" if snapshot == self.snapshot_before else "a new snapshot",
                      f"newest snapshot {snapshot}")
        return pd.DataFrame({"fact": [
            "the run's process", "newest snapshot before the kill", "newest snapshot after the kill",
            "new files in any snapshot's manifests (all_files)", "rows of the drill's topic a reader sees"],
            "value": [f"gone: exit code {self.child.returncode}, killed by signal {-self.child.returncode}",
                      self.snapshot_before, snapshot,
                      f"{in_manifests} of {len(self.new)}", rows]}).set_index("fact")

    def rerun(self) -> pd.DataFrame:
        """The next Bronze run: it starts from the same committed offsets and lands every event once."""
        run = run_bronze(self.spark, self.cfg)
        landed = _landed(self.spark, self.cfg)
        self.drill.at("scheduler", "the next Bronze run committed",
                      f"read {run.records_read:,} records, {landed['bronze events']:,} events, "
                      f"{landed['dead letters']} dead letters")
        self.drill.evidence.update({"records the next run read": run.records_read, **landed})
        return self.drill.table()

    def remove_orphans(self) -> pd.DataFrame:
        """The killed run's files, deleted by Iceberg's orphan-file action with the age rule at the kill."""
        assert self.killed_at is not None, "kill_at_first_file() first"
        removed = {storage.key(uri) for uri in remove_orphans_now(self.spark, self.cfg, BRONZE_EVENTS,
                                                                  self.killed_at + timedelta(seconds=1))}
        left = storage.data_files(self.cfg, self.location)
        gone = [k for k in self.new if k in removed and k not in left]
        self.drill.evidence["the kill's files removed as orphans"] = len(gone)
        self.drill.expected["the kill's files removed as orphans"] = len(self.new)
        self.drill.at("maintenance", "orphan files removed", f"{len(gone)} of the kill's {len(self.new)}")
        return pd.DataFrame([{"file": f.name, "removed": k in removed, "still in storage": k in left}
                             for k, f in sorted(self.new.items())])

    def finish(self) -> Drill:
        """The drill's expected figures, invariants and finding."""
        drill = self.drill
        drill.checks = _bronze_checks(self.spark, self.cfg)
        e = drill.evidence
        drill.finding = ("killed with data files written and no commit: no snapshot named them, readers saw 0 rows; "
                         f"the next run read all {e.get('records the next run read', 0):,} records and landed "
                         f"{e.get('bronze events', 0):,} events once; the files were removed as orphans")
        return drill


def newest_snapshot(spark: SparkSession, table: str) -> int | None:
    """The id of the table's newest snapshot (None for a table never written)."""
    row = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at DESC LIMIT 1").first()
    return row.snapshot_id if row else None


# 2 ------------------------------------------------------------------------------------------------

def bronze_crash_after_commit(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """Bronze committed its offsets, then crashed before it could report success; the retry."""
    drill = Drill(2, "Bronze dies after its commit", "crash after the offsets commit, before success was reported")
    cfg = drill_cfg(cfg, 2, salt)
    manifest = _traffic(cfg, 1000, seed=102, salt=salt)
    drill.at("producer", f"{manifest.records:,} records on the drill's topic")
    crashed = _crashed("bronze.after_commit", lambda: run_bronze(spark, cfg))
    landed = _landed(spark, cfg)
    drill.at("Bronze", "crashed after its commit (bronze.after_commit)",
             f"{landed['bronze events']:,} events and their offsets committed; the scheduler sees a failure")
    retry = run_bronze(spark, cfg)
    drill.at("scheduler", "the retry ran", f"read {retry.records_read} records, inserted {retry.rows_merged} rows")
    drill.evidence = {"crashed": crashed, "records the retry read": retry.records_read,
                      "rows the retry inserted": retry.rows_merged,
                      "tables unchanged by the retry": _landed(spark, cfg) == landed, **landed}
    drill.expected = {"crashed": True, "records the retry read": 0, "rows the retry inserted": 0,
                      "tables unchanged by the retry": True, **_expected_bronze(manifest)}
    drill.checks = _bronze_checks(spark, cfg)
    drill.finding = (f"crashed after committing {landed['bronze events']:,} events and their offsets; the retry read "
                     f"{retry.records_read} records and inserted {retry.rows_merged} rows")
    return drill


# 3 ------------------------------------------------------------------------------------------------

def silver_and_gold_fail_then_retry(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """Silver dies between its two MERGEs, Gold before its MERGE; each is retried for the same interval."""
    drill = Drill(3, "Silver and Gold fail, then retry", "Silver crashed between its MERGEs, Gold before its MERGE")
    cfg = drill_cfg(cfg, 3, salt)
    manifest = _traffic(cfg, 1000, seed=103, salt=salt)
    start = datetime.now(UTC)
    run_bronze(spark, cfg)
    drill.at("Bronze", "landed the drill's topic", f"{manifest.distinct_events:,} events")
    end = datetime.now(UTC) + timedelta(seconds=1)
    crashes = 0
    for layer, point, step in (("Silver", "silver.after_events", lambda: run_silver(spark, start, end)),
                               ("Gold", "gold.before_merge", lambda: run_gold(spark, start, datetime.now(UTC)))):
        crashed = _crashed(point, step)
        crashes += crashed
        drill.at(layer, f"crashed at {point}" if crashed else f"did not crash at {point}")
        step()  # the retry, for the same interval
        drill.at("scheduler", f"{layer} retried for the same interval", "committed")
    topic = cfg.events_topic
    row = one_row(spark.sql(f"""
        SELECT COUNT(s.event_id) AS silver, COUNT(r.event_id) AS rejected
        FROM {BRONZE_EVENTS} b
        LEFT JOIN {SILVER_EVENTS} s ON s.event_id = b.event_id
        LEFT JOIN {SILVER_REJECTED} r ON r.event_id = b.event_id
        WHERE b.kafka_topic = '{topic}'"""))
    drill.evidence = {"crashes": crashes, "silver rows of the batch": row.silver,
                      "rejected rows of the batch": row.rejected}
    drill.expected = {"crashes": 2, "silver rows of the batch": manifest.requests,
                      "rejected rows of the batch": manifest.invalid_events}
    drill.checks = [silver_covers(spark, start, end), _gold_check(spark, start)]
    drill.finding = (f"Silver crashed between its MERGEs and Gold before its MERGE; retried for the same interval, "
                     f"Silver holds {row.silver:,} rows and {row.rejected} rejects of the batch, each once, and Gold "
                     "equals a recompute")
    return drill


# 7 ------------------------------------------------------------------------------------------------

def _quarter(back: int) -> tuple[datetime, datetime]:
    """The quarter hour `back` quarters before the last full one: a manual Bronze DAG run's interval."""
    now = datetime.now(UTC)
    end = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - timedelta(minutes=15 * back)
    return end - timedelta(minutes=15), end


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


#: How the drill (an operator, a CI job) starts a DAG run.
TRIGGER = "POST /api/v2/dags/bronze/dagRuns"


def _span(task: dict) -> tuple[datetime, datetime]:
    """When a task try started and ended, as Airflow reports them."""
    began, ended = _when(task.get("start_date")), _when(task.get("end_date"))
    if began is None or ended is None:
        raise WorkbookError(f"Airflow reports no start or end for try {task.get('try_number')}: {task}")
    return began, ended


class KafkaDownUnderAirflow:
    """Drill 7 through Airflow's own scheduler, step by step: a backlog on the drill's topic, Airflow up
    with the DAGs of dags/, the broker stopped, a Bronze DAG run triggered through the REST API, its three
    tries read back from the API, the one alert; the broker back, a second run landing the backlog."""

    #: Seconds between tries here (the DAGs' default is 30 s; WORKBOOK_RETRY_DELAY_S sets it).
    RETRY_DELAY_S = 2

    def __init__(self, spark: SparkSession, cfg: Settings, salt: int, runs_dir: Path) -> None:
        self.spark = spark
        self.salt = salt
        self.cfg = replace(drill_cfg(cfg, 7, salt), runs_dir=runs_dir / f"drill-7-{salt:x}")
        # Airflow's metadata of its own (port AIRFLOW_URL), so a user's Airflow home is never touched
        self.airflow = AirflowSession(self.cfg, runs_dir / f"drill-7-{salt:x}" / "stack", self.RETRY_DELAY_S)
        self.drill = Drill(7, "Kafka down under Airflow", "the broker stopped while Airflow ran a Bronze DAG run")
        self.manifest = _traffic(self.cfg, 500, seed=104, salt=salt)
        self.drill.at("producer", f"{self.manifest.records:,} records on the drill's topic", "the backlog")
        self.drill.expected = {"tries of the run while Kafka was down": 3, "of them failed": 3, "alerts": 1,
                               "attempts the alert counted": 3, "catch-up run": "success",
                               **_expected_bronze(self.manifest)}
        self.client: AirflowRest | None = None
        self.failed_run = f"kafka-down-{salt:x}"
        self.catch_up_run = f"catch-up-{salt:x}"
        self.tries: list[dict] = []

    def airflow_up(self) -> pd.Series:
        """Airflow's api-server, dag-processor and scheduler, reading the drill's topic and run history;
        returns the Bronze DAG and its task as Airflow parsed them."""
        self.client = self.airflow.up("bronze")  # manual runs only: each run is the drill's
        try:
            dag = self.client.dag("bronze")
            tasks = self.client.call("GET", "/dags/bronze/tasks")["tasks"]
        except BaseException:
            self._stop_airflow()
            raise
        self.drill.at("Airflow", "api-server, dag-processor and scheduler up", f"{len(self.airflow.names)} processes")
        (task,) = [t for t in tasks if t["task_id"] == "run_bronze"]
        delay = task.get("retry_delay")
        return pd.Series({"DAG": dag["dag_id"], "schedule": dag.get("timetable_summary"),
                          "active runs at most": dag.get("max_active_runs"),
                          "tags": ", ".join(t["name"] for t in dag.get("tags", [])),
                          "task": task["task_id"], "retries": int(task.get("retries") or 0),
                          "retry delay": f"{delay['seconds']} s" if isinstance(delay, dict) else delay,
                          "operator": task.get("operator_name")}, name="as Airflow parsed it")

    def _stop_airflow(self) -> None:
        self.airflow.down()
        self.client = None
        self.drill.at("Airflow", "stopped")

    def break_and_trigger(self) -> Wrapped:
        """Stop the broker, trigger a Bronze DAG run, wait for its end, read back its tries and the alert;
        start the broker again. Returns the tries as the API reports them. On any failure Kafka is started
        again and Airflow stopped."""
        assert self.client is not None, "airflow_up() first"
        client = self.client
        stack.down(self.cfg, ["kafka"])
        stopped = self.drill.at("drill", "Kafka stopped")
        try:
            start, end = _quarter(back=1)
            client.trigger("bronze", self.failed_run, {}, logical_date=start, interval=(start, end))
            self.drill.at("operator", "Bronze DAG run triggered through the REST API", TRIGGER)
            run = client.wait_for_run("bronze", self.failed_run, timeout_s=300)
            self.drill.at("Airflow", f"DAG run {run['state']}", "", _when(run.get("end_date")))
            self.tries = client.tries("bronze", self.failed_run, "run_bronze")
            for attempt in self.tries:
                lines = client.log("bronze", self.failed_run, "run_bronze", attempt["try_number"])
                error = next((line.strip() for line in lines if "The stack is not running" in line), "")
                attempt["error"] = error[error.find("The stack"):] if error else ""
                self.drill.at("Airflow", f"try {attempt['try_number']} started", "", _when(attempt["start_date"]))
                self.drill.at("Airflow", f"try {attempt['try_number']} {attempt['state']}", attempt["error"],
                              _when(attempt["end_date"]))
            for alert in self._alerts():
                self.drill.at("alerts", "alert sent", f"{alert['job']} after {alert['attempts']} attempts",
                              _when(alert["at"]))
        except BaseException:
            self._stop_airflow()
            raise
        finally:
            stack.up(self.cfg, ["kafka"], quiet=True)
            self.drill.spans["Kafka stopped"] = (stopped, self.drill.at("drill", "Kafka started again"))
        rows = []
        for attempt in self.tries:
            began, ended = _span(attempt)
            rows.append({"try": attempt["try_number"], "state": attempt["state"],
                         "started": f"+{self.drill.timeline.seconds(began):.1f} s",
                         "lasted": f"{(ended - began).total_seconds():.1f} s", "error in its log": attempt["error"]})
        return wrapped(pd.DataFrame(rows).set_index("try"))

    def _alerts(self) -> list[dict]:
        log = alerts_log(self.cfg)
        lines = log.read_text().splitlines() if log.exists() else []
        return [doc for doc in map(json.loads, lines) if "delivery" not in doc]

    def catch_up(self) -> pd.DataFrame:
        """The broker is back: the next Bronze run lands the backlog; Airflow is stopped after."""
        assert self.client is not None, "airflow_up() first"
        try:
            start, end = _quarter(back=0)
            self.client.trigger("bronze", self.catch_up_run, {}, logical_date=start, interval=(start, end))
            self.drill.at("operator", "next Bronze DAG run triggered", TRIGGER)
            run = self.client.wait_for_run("bronze", self.catch_up_run, timeout_s=600)
            began, ended = _when(run.get("start_date")), _when(run.get("end_date"))
            if began and ended:
                self.drill.spans["catch-up run"] = (began, ended)
            note = "the backlog landed" if run["state"] == "success" else ""
            self.drill.at("Airflow", f"DAG run {run['state']}", note, ended)
        finally:
            self._stop_airflow()
        _refresh(self.spark)
        landed = _landed(self.spark, self.cfg)
        failed = [t for t in self.tries if t["state"] == "failed"]
        alerts = self._alerts()
        self.drill.evidence = {"tries of the run while Kafka was down": len(self.tries),
                               "of them failed": len(failed), "alerts": len(alerts),
                               "attempts the alert counted": alerts[0]["attempts"] if alerts else 0,
                               "catch-up run": run["state"], **landed}
        history = RunHistory(self.cfg).frame()
        self.drill.details["run history"] = history[["job", "runner", "attempt", "status"]]
        return self.drill.table()

    def plot(self) -> None:
        """The outage, each try and the catch-up run on one time axis, the alert as a marker."""
        tries = {f"try {t['try_number']}": _span(t) for t in self.tries}
        marks = {f"alert {n}" if n else "alert": _when(a["at"]) for n, a in enumerate(self._alerts())}
        spans = self.drill.spans
        ordered = {k: spans[k] for k in ("Kafka stopped",) if k in spans} | tries | \
            {k: spans[k] for k in ("catch-up run",) if k in spans}
        timeline_chart(self.drill.timeline, ordered, marks,
                       "drill 7: Kafka down under Airflow's scheduler")

    def finish(self) -> Drill:
        drill = self.drill
        drill.checks = _bronze_checks(self.spark, self.cfg)
        e = drill.evidence
        drill.finding = (f"with the broker down Airflow ran {e['tries of the run while Kafka was down']} tries "
                         f"({self.RETRY_DELAY_S} s apart), each failing on the stack check, then one alert; "
                         f"with Kafka back the next run ({e['catch-up run']}) landed the backlog's "
                         f"{e['bronze events']:,} events once")
        return drill


# 8 ------------------------------------------------------------------------------------------------

def _stream_rows(cfg: Settings) -> int:
    """The drill topic's rows the stream has committed to its Iceberg table."""
    return len(lifecycle.read_table(cfg, STREAM_EVENTS, f"kafka_topic == '{cfg.events_topic}'", ("event_id",)))


class _Sampler:
    """`read()` every `every_s` in a thread while the block runs: the (when, value) samples of a plot."""

    def __init__(self, read: Callable[[], int], every_s: float = 1.0) -> None:
        self.read, self.every_s = read, every_s
        self.samples: list[tuple[datetime, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a read that fails mid-drill is a gap in the plot, not an error
                self.samples.append((datetime.now(UTC), self.read()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flink_taskmanager_killed(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """The stream's taskmanager SIGKILLed mid-stream: the job resumes from its checkpoint, a Spark
    Bronze run covers the records meanwhile, and both Bronze tables end with the same event_ids."""
    drill = Drill(8, "Flink taskmanager killed", "the stream job's taskmanager SIGKILLed mid-stream")
    cfg = drill_cfg(cfg, 8, salt)
    # One subtask per taskmanager: in cluster mode the job spans both, and the killed one holds half.
    job = StreamJob(name=f"drill-8-{salt:x}", topic=cfg.events_topic, group_id=cfg.events_topic,
                    checkpoint_interval="2s", parallelism=cfg.taskmanagers)
    job_id = lifecycle.start(cfg, job)
    drill.at("Flink", "stream job running", f"checkpoints every {job.checkpoint_interval}")
    flink = FlinkRest(cfg)
    try:
        spread = len(flink.job_taskmanagers(job_id))
        with _Sampler(lambda: _stream_rows(cfg)) as rows:
            first = _traffic(cfg, 4000, seed=105, salt=salt)
            drill.at("producer", f"{first.records:,} records on the drill's topic", "the first half")
            poll(lambda: _stream_rows(cfg), until=lambda n: n >= first.distinct_events, timeout_s=120,
                 timed_out=lambda n: FlinkJobError(f"drill 8: the stream committed {n} of the first "
                                                   f"{first.distinct_events} events of {cfg.events_topic} in 120 s"))
            rows_before = _stream_rows(cfg)
            drill.at("Flink", "the first half committed", f"{rows_before:,} rows in the stream table")
            last = flink.latest_checkpoint(job_id) or {}
            stack.kill(cfg, "flink-taskmanager")
            killed = drill.at("drill", "taskmanager SIGKILLed", f"latest completed checkpoint {last.get('id')}")
            second = _traffic(cfg, 4000, seed=205, salt=salt)
            drill.at("producer", f"{second.records:,} more records while the stream is down", "the second half")
            began = drill.at("Spark Bronze", "run started while the stream is down")
            bronze = run_bronze(spark, cfg)  # the batch path covers the stream's gap while it is down
            rows_while_down = _stream_rows(cfg)
            drill.spans["Spark Bronze run"] = (began, drill.at(
                "Spark Bronze", "landed the topic", f"{bronze.events_inserted:,} events; the stream table still "
                f"{rows_while_down:,} rows"))
            stack.up(cfg, ["flink-taskmanager"], quiet=True)
            drill.spans["taskmanager down"] = (killed, drill.at("drill", "a new taskmanager started"))
            lifecycle.wait_caught_up(cfg, job_id, job, timeout_s=300, progress=False)
            counts = flink.checkpoints(job_id)
            restored = (counts.get("latest") or {}).get("restored") or {}
            drill.marks["killed"] = killed
            if restored.get("restore_timestamp"):
                drill.marks["restored"] = drill.at(
                    "Flink", f"job restored checkpoint {restored.get('id')}", "Kafka offsets and dedup state",
                    datetime.fromtimestamp(restored["restore_timestamp"] / 1000, UTC))
            drill.at("Flink", "caught up", f"{_stream_rows(cfg):,} rows in the stream table")
        drill.series = ("stream table rows", rows.samples)
    finally:
        lifecycle.cancel(cfg, job_id)
    both = lifecycle.compare_with_bronze(cfg, spark)
    distinct = first.distinct_events + second.distinct_events
    drill.evidence = {"taskmanagers running the job": spread,
                      "stream rows committed before the kill": rows_before,
                      "latest checkpoint completed before the kill": last.get("id"),
                      "checkpoint restored from": restored.get("id"),
                      "restored from a checkpoint": counts["counts"]["restored"] >= 1,
                      "events Spark's Bronze landed while the stream was down": bronze.events_inserted, **both}
    drill.expected = {"taskmanagers running the job": cfg.taskmanagers,
                      "stream rows committed before the kill": first.distinct_events,
                      "restored from a checkpoint": True,
                      "events Spark's Bronze landed while the stream was down": distinct,
                      "flink stream rows": distinct, "spark bronze rows": distinct, "only in the stream": 0,
                      "only in bronze": 0, "repeated in the stream": 0}
    drill.checks = _bronze_checks(spark, cfg)
    drill.finding = (f"killed after the stream committed {rows_before:,} events; {second.distinct_events:,} more "
                     f"arrived while it was down and Spark's Bronze landed all {bronze.events_inserted:,} meanwhile; "
                     "the job restored its last checkpoint "
                     f"and both Bronze tables hold the same {both.get('flink stream rows', 0):,} event ids, none twice")
    return drill


# 4 ------------------------------------------------------------------------------------------------

def _at_once(runs: list[Callable[[SparkSession], Any]], spark: SparkSession, point: str, meet: Path) -> list[Any]:
    """Run each callable in its own thread and Spark session (its own catalog, like a second driver),
    all held at `point` until every one has reached it; returns their results (or exceptions)."""
    results: list[Any] = [None] * len(runs)

    def go(i: int) -> None:
        try:
            results[i] = runs[i](spark.newSession())
        except Exception as exc:  # reported as evidence, not swallowed
            results[i] = exc

    faults.rendezvous_at(point, meet, parties=len(runs))
    try:
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(runs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        faults.rendezvous_at(None)
    return results


class _Refusals(logging.Handler):
    """The lost races that lib.medallion.commits logs while a drill runs, with when and Iceberg's words."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[datetime, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((datetime.fromtimestamp(record.created, UTC), record.getMessage()))


def _in_warehouse(cfg: Settings, text: str) -> str:
    """`text` with the warehouse's location written `<warehouse>/`: the same on every machine, no local path."""
    root = cfg.iceberg_warehouse.rstrip("/")
    for form in {root, root.replace("file:///", "file:/")}:
        text = text.replace(form + "/", "<warehouse>/")
    return text


def _conflict(message: str) -> tuple[str, list[str]]:
    """Iceberg's refusal split into its words and the conflicting files it lists (a long list of paths
    says nothing more to a reader than how many there are and what one looks like)."""
    reason, _, listed = message.partition(": [")
    files = [f.strip() for f in listed.split("]")[0].split(",") if f.strip()] if listed else []
    return reason, files


def two_runs_at_once(spark: SparkSession, cfg: Settings, salt: int, runs_dir: Path) -> Drill:
    """Two Bronze runs over the same new records, then two Silver and two Gold runs, each pair at once."""
    drill = Drill(4, "Two runs at once", "two Bronze, two Silver and two Gold runs raced over the same rows")
    cfg = drill_cfg(cfg, 4, salt)
    manifest = _traffic(cfg, 1000, seed=106, salt=salt)
    drill.at("producer", f"{manifest.records:,} records on the drill's topic")
    meet = runs_dir / f"drill-4-{salt:x}"
    # The tables exist before the race, as in production: the drill races commits, not a fresh catalog's
    # first CREATEs (on a fresh stack this drill may be the first to touch Bronze).
    create_tables(spark)
    refusals = _Refusals()
    commits.LOG.addHandler(refusals)
    try:
        start = datetime.now(UTC)
        drill.at("drill", "two Bronze runs started, held before their MERGE until both are there")
        bronze = _at_once([lambda s: run_bronze(s, cfg)] * 2, spark, "bronze.before_events", meet / "bronze")
        drill.at("Bronze", "both runs ended")
        end = datetime.now(UTC) + timedelta(seconds=1)
        silver = _at_once([lambda s: run_silver(s, start, end)] * 2, spark, "silver.before_merge", meet / "silver")
        drill.at("Silver", "both runs ended")
        gold = _at_once([lambda s: run_gold(s, start, datetime.now(UTC))] * 2, spark, "gold.before_merge",
                        meet / "gold")
        drill.at("Gold", "both runs ended")
    finally:
        commits.LOG.removeHandler(refusals)
    told = [(when, *_in_warehouse(cfg, message).partition(" lost a race and starts again: ")[::2])
            for when, message in refusals.seen]
    refused = [(when, layer, *_conflict(words)) for when, layer, words in told]
    for when, layer, reason, files in refused:
        drill.at(layer, "commit refused by Iceberg: lost the race, starts again",
                 f"{reason} ({len(files)} file{'s' if len(files) != 1 else ''})", when)
    drill.details["commits refused"] = pd.DataFrame(
        [(layer, reason, len(files), files[0] if files else "") for _, layer, reason, files in refused],
        columns=["run", "Iceberg's message, up to its list of files", "files it names", "the first of them"])
    _refresh(spark)
    failed = [r for r in (*bronze, *silver, *gold) if isinstance(r, Exception)]
    done = [r for r in (*bronze, *silver, *gold) if not isinstance(r, Exception)]
    drill.evidence = {
        "runs that failed": len(failed),
        "bronze events inserted by the two runs": sum(r.events_inserted for r in bronze if r in done),
        "races lost and retried": sum(r.conflicts for r in done),
        **_landed(spark, cfg),
    }
    drill.expected = {"runs that failed": 0, "bronze events inserted by the two runs": manifest.distinct_events,
                      **_expected_bronze(manifest)}
    drill.checks = [*_bronze_checks(spark, cfg), silver_covers(spark, start, end), _gold_check(spark, start)]
    drill.errors = [repr(e)[:300] for e in failed]
    inserted = drill.evidence["bronze events inserted by the two runs"]
    drill.finding = ("each pair met before its commit; Iceberg refused the losers' commits and they ran again on the "
                     f"new state: the two Bronze runs inserted {inserted:,} events together, none doubled, Silver and "
                     "Gold whole")
    return drill


# 5 ------------------------------------------------------------------------------------------------

NOT_UTF8 = b'{"event_id": "\xff\xfe\xfd", "user_id": "latin-1 phone"}'
BAD_BURST = TrafficShape(invalid_share=0.1, malformed_share=0.1)


def bad_input_burst(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """A burst of malformed and schema-violating records, one of them not even UTF-8, among good ones."""
    drill = Drill(5, "A burst of bad records", "10% malformed, 10% invalid, one record not UTF-8")
    cfg = drill_cfg(cfg, 5, salt)
    manifest = _traffic(cfg, 1000, seed=107, salt=salt, shape=BAD_BURST)
    producer = connect_producer(cfg.kafka_bootstrap_servers, "drill-5")
    producer.produce(cfg.events_topic, key=b"latin-1 phone", value=NOT_UTF8, partition=0)
    producer.flush(30)
    drill.at("producer", f"{manifest.records + 1:,} records on the drill's topic",
             f"{manifest.malformed_total} malformed, {manifest.invalid_events} invalid, 1 not UTF-8")
    start = datetime.now(UTC)
    bronze = run_bronze(spark, cfg)
    drill.at("Bronze", "committed", f"{bronze.events_inserted:,} events, {bronze.dead_letters_inserted} dead letters")
    end = datetime.now(UTC) + timedelta(seconds=1)
    run_silver(spark, start, end)
    drill.at("Silver", "committed", "invalid events set apart as rejects")
    topic = cfg.events_topic
    reasons = to_pandas(spark.sql(f"""
        SELECT reason, COUNT(*) AS n FROM {BRONZE_DEAD_LETTER} WHERE kafka_topic = '{topic}'
        GROUP BY reason ORDER BY reason"""))
    rejected = one_row(spark.sql(f"""
        SELECT COUNT(*) AS n FROM {SILVER_REJECTED} r JOIN {BRONZE_EVENTS} b ON b.event_id = r.event_id
        WHERE b.kafka_topic = '{topic}'""")).n
    readable: dict[str, int | str] = {}
    lake = catalog(cfg)
    for table in (t for t in (BRONZE_DEAD_LETTER, STREAM_DEAD_LETTER) if lake.table_exists(t)):
        try:
            readable[table] = len(lake.load_table(table).scan().to_pandas())
        except Exception as exc:  # an unreadable table is the drill's finding
            readable[table] = f"unreadable: {type(exc).__name__}"
    landed = _landed(spark, cfg)
    drill.evidence = {**landed, "not UTF-8 dead letters": int(reasons[reasons.reason == "not UTF-8 text"].n.sum()),
                      "rejected by Silver": rejected,
                      "dead letter tables read whole by PyIceberg": all(isinstance(n, int) for n in readable.values())}
    drill.expected = {**_expected_bronze(manifest), "dead letters": manifest.malformed_total + 1,
                      "not UTF-8 dead letters": 1, "rejected by Silver": manifest.invalid_events,
                      "dead letter tables read whole by PyIceberg": True}
    drill.checks = [*_bronze_checks(spark, cfg), silver_covers(spark, start, end)]
    drill.details["dead letters by reason"] = reasons.set_index("reason")
    drill.finding = (f"{landed['dead letters']} records Bronze could not parse became dead letters with their reason "
                     f"(1 of them not UTF-8), {rejected} invalid events became Silver rejects, "
                     f"{landed['bronze events']:,} events landed once; nothing raised")
    return drill


# 6 ------------------------------------------------------------------------------------------------

def late_event_after_gold(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """An event three days old arrives after Gold already ran for its day; the next Gold run corrects it."""
    drill = Drill(6, "A late event after Gold ran", "an event 3 days old arrived after its day's Gold")
    cfg = drill_cfg(cfg, 6, salt)
    user = f"drill-6-{salt:x}"
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)

    def send(n: int, first: int) -> None:
        producer = connect_producer(cfg.kafka_bootstrap_servers, "drill-6")
        for i in range(first, first + n):
            event = handle_request("to_roman", str(i), user, event_time=day + timedelta(minutes=i))
            producer.produce(cfg.events_topic, key=event.key, value=event.to_json())
        producer.flush(30)

    def layers() -> int:
        start = datetime.now(UTC)
        run_bronze(spark, cfg)
        run_silver(spark, start, datetime.now(UTC) + timedelta(seconds=1))
        run_gold(spark, start, datetime.now(UTC) + timedelta(seconds=1))
        row = spark.sql(f"SELECT total_requests FROM {GOLD_DAILY} WHERE user_id = '{user}' "
                        f"AND event_date = DATE '{day.date()}'").first()
        return row.total_requests if row else 0

    since = datetime.now(UTC)
    send(3, 1)
    drill.at("producer", f"3 events of {day.date()} (three days ago)")
    before = layers()
    drill.at("Gold", f"ran for the batch: {day.date()} has {before} requests")
    send(1, 4)  # the phone that was offline for three days
    drill.at("producer", f"1 more event of {day.date()} arrives late")
    after = layers()
    drill.at("Gold", f"ran for the late event's batch: {day.date()} has {after} requests")
    drill.evidence = {"gold total for that day before": before, "after the late event": after}
    drill.expected = {"gold total for that day before": 3, "after the late event": 4}
    drill.checks = [_gold_check(spark, since)]
    drill.finding = (f"Gold's row for a day three days back went from {before} to {after} requests when a late event "
                     "arrived: Gold recomputes the keys its interval's Silver rows touch, from all of Silver")
    return drill


# 9 ------------------------------------------------------------------------------------------------

def bounded_backlog(spark: SparkSession, cfg: Settings, salt: int, events: int = 4000,
                    max_records: int = 1000) -> Drill:
    """A backlog drained in runs of at most `max_records`: no gap, no overlap, every record once; beside it
    the same backlog (on a topic of its own) in one unbounded run, with the driver's heap for each run."""
    drill = Drill(9, "A backlog in bounded runs", f"a backlog of {events:,} requests, runs of {max_records:,}")
    cfg = drill_cfg(cfg, 9, salt)
    whole = replace(cfg, events_topic=f"{cfg.events_topic}-unbounded")
    ensure_topic(cfg.kafka_bootstrap_servers, whole.events_topic, cfg.events_partitions)
    manifest = _traffic(cfg, events, seed=109, salt=salt)
    _traffic(whole, events, seed=109, salt=salt ^ 1)  # the same shape, other event_ids (both must land)
    drill.at("producer", f"{manifest.records:,} records on each of two topics", "the same backlog twice")
    heap = HeapPeak(spark)
    runs = []
    before = heap.reset(collect=True)
    one = run_bronze(spark, whole)
    runs.append(("unbounded", one.records_read, before, *heap.read()))
    drill.at("Bronze", "one unbounded run", f"{one.records_read:,} records")
    reads = []
    while True:
        before = heap.reset(collect=True)
        run = run_bronze(spark, cfg, max_records=max_records)
        if not run.records_read:
            break
        reads.append(run.records_read)
        runs.append((f"bounded {len(reads)}", run.records_read, before, *heap.read()))
        drill.at("Bronze", f"bounded run {len(reads)}", f"{run.records_read:,} records")
    drill.at("Bronze", "the next run read nothing: the backlog is drained")
    drill.evidence = {"runs": len(reads), "largest run": max(reads, default=0), **_landed(spark, cfg)}
    drill.details["records read per run"] = pd.DataFrame({"run": range(1, len(reads) + 1), "records": reads})
    drill.details["driver heap per run"] = pd.DataFrame(
        runs, columns=["run", "records", "old generation before (MiB)", "old generation peak (MiB)",
                       "heap max (MiB)"]).set_index("run")
    drill.expected = {"runs": -(-manifest.records // max_records), "largest run": max_records,
                      **_expected_bronze(manifest)}
    drill.checks = _bronze_checks(spark, cfg)
    drill.finding = (f"{manifest.records:,} records drained in {len(reads)} runs of at most {max_records:,}, the "
                     "committed ranges tiling every partition with no gap or overlap, every record once")
    return drill


def summary(drills: list[Drill]) -> pd.DataFrame:
    """The closing table: drill, what broke, recovered, the evidence figures."""
    return pd.DataFrame([d.summary() for d in sorted(drills, key=lambda d: d.number)]).set_index("drill")


def show_summary(drills: list[Drill]) -> None:
    """Display the closing table and record it in the output, where `make run`'s summary reads it."""
    table = summary(drills)
    record = {"drills": {row.Index: {"recovered": row.recovered == "yes", "evidence": row.evidence}
                         for row in table.itertuples()}}
    display(wrapped(table), metadata={RECORD_KEY: record})


def settle_and_check(spark: SparkSession, cfg: Settings) -> list[Invariant]:
    """What a drills notebook ends on: Silver, then Gold, over every event so far, then every invariant.

    Gold runs after Silver, so the rows Silver just processed are in Gold's interval; the drills' own
    topics are all in the tables by then, so each invariant is checked over everything they did."""
    run_silver(spark, EPOCH, datetime.now(UTC))
    run_gold(spark, EPOCH, datetime.now(UTC))
    return check_all(spark, cfg)
