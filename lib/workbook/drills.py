"""The failure drills of notebook 06: each breaks one thing for real and returns its evidence.

A drill works on a topic of its own (`drill-<n>-<salt>`) with traffic salted the same way, so
its figures are the same on a fresh stack and on one that ran the drills before, and the
events topic's tables are left to the other notebooks. Each returns a `Drill`: what broke, the
figures that show what the platform did (counted from the tables and Kafka, never from what a
job reported), the invariants that were checked, and whether it recovered. The
notebook shows them; tests/integration/test_drills.py asserts them.
"""

from __future__ import annotations

import json
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
from urllib.parse import urlparse

import pandas as pd
from IPython.display import display
from pyspark.sql import SparkSession

from lib import faults, stack
from lib.config import ROOT, Settings
from lib.contract.events import handle_request
from lib.errors import FlinkJobError, InjectedCrash, WorkbookError
from lib.jobs.history import RunHistory
from lib.jobs.runner import RECORD_KEY
from lib.jobs.scheduler import Retry, Scheduler
from lib.kafka import connect_producer, ensure_topic
from lib.medallion.bronze import run_bronze
from lib.medallion.catalog import catalog
from lib.medallion.gold import run_gold
from lib.medallion.invariants import (
    Invariant,
    gold_matches_recompute,
    kafka_accounted,
    offsets_tile,
    silver_covers,
)
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


@dataclass
class Drill:
    """One drill's outcome: what broke, the evidence, the invariants checked, recovered or not."""

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

    @property
    def recovered(self) -> bool:
        """Every invariant holds and every figure that has an expected value has it."""
        return all(c.ok for c in self.checks) and all(self.evidence.get(k) == v for k, v in self.expected.items())

    def table(self) -> pd.DataFrame:
        """The evidence beside what it should be, then the invariants."""
        rows = [(k, v, self.expected.get(k, "")) for k, v in self.evidence.items()]
        rows += [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in self.checks]
        return pd.DataFrame(rows, columns=["figure", "value", "expected"]).set_index("figure")

    def summary(self) -> dict[str, Any]:
        shown = ", ".join(f"{k} {v}" for k, v in self.evidence.items() if k in self.expected)
        return {"drill": f"{self.number}. {self.title}", "what broke": self.broke,
                "recovered": "yes" if self.recovered else "no", "evidence": shown}


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

_BRONZE_CHILD = "from lib.config import settings; from lib.medallion.bronze import run_bronze; " \
                "from lib.medallion.spark import spark_session; cfg = settings(); run_bronze(spark_session(cfg), cfg)"


def _data_files(location: Path) -> set[Path]:
    return set((location / "data").rglob("*.parquet"))


def bronze_killed_mid_write(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """A Bronze driver SIGKILLed while its MERGE writes data files, before its commit."""
    drill = Drill(1, "Bronze killed mid-write", "the driver process SIGKILLed while writing data files")
    cfg = drill_cfg(cfg, 1, salt)
    manifest = _traffic(cfg, 3000, seed=101, salt=salt)
    create_tables(spark)  # on a fresh stack, this drill may be the first to touch Bronze
    location = Path(urlparse(catalog(cfg).load_table(BRONZE_EVENTS).location()).path)
    before = _data_files(location)
    env = {**os.environ, "EVENTS_TOPIC": cfg.events_topic}
    child = subprocess.Popen([sys.executable, "-c", _BRONZE_CHILD], cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poll(lambda: bool(_data_files(location) - before) or child.poll() is not None, timeout_s=300, every_s=0.02,
         timed_out=lambda _: WorkbookError(f"drill 1: the Bronze run wrote no data file under {location} in 300 s"))
    killed_while_running = child.poll() is None
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    _refresh(spark)
    files = spark.sql(f"SELECT file_path FROM {BRONZE_EVENTS}.files").collect()
    live = {Path(urlparse(r.file_path).path) for r in files}
    orphans = len((_data_files(location) - before) - live)
    drill.evidence["killed while running"] = killed_while_running
    drill.evidence["data files left uncommitted by the kill"] = orphans
    rerun = run_bronze(spark, cfg)
    drill.evidence["records the next run read"] = rerun.records_read
    drill.evidence.update(_landed(spark, cfg))
    drill.expected = {"killed while running": True, "records the next run read": manifest.records,
                      **_expected_bronze(manifest)}
    drill.checks = _bronze_checks(spark, cfg)
    return drill


# 2 ------------------------------------------------------------------------------------------------

def bronze_crash_after_commit(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """Bronze committed its offsets, then crashed before it could report success; the retry."""
    drill = Drill(2, "Bronze dies after its commit", "crash after the offsets commit, before success was reported")
    cfg = drill_cfg(cfg, 2, salt)
    manifest = _traffic(cfg, 1000, seed=102, salt=salt)
    crashed = _crashed("bronze.after_commit", lambda: run_bronze(spark, cfg))
    landed = _landed(spark, cfg)
    retry = run_bronze(spark, cfg)
    drill.evidence = {"crashed": crashed, "records the retry read": retry.records_read,
                      "rows the retry inserted": retry.rows_merged,
                      "tables unchanged by the retry": _landed(spark, cfg) == landed, **landed}
    drill.expected = {"crashed": True, "records the retry read": 0, "rows the retry inserted": 0,
                      "tables unchanged by the retry": True, **_expected_bronze(manifest)}
    drill.checks = _bronze_checks(spark, cfg)
    return drill


# 3 ------------------------------------------------------------------------------------------------

def silver_and_gold_fail_then_retry(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """Silver dies between its two MERGEs, Gold before its MERGE; each is retried for the same interval."""
    drill = Drill(3, "Silver and Gold fail, then retry", "Silver crashed between its MERGEs, Gold before its MERGE")
    cfg = drill_cfg(cfg, 3, salt)
    manifest = _traffic(cfg, 1000, seed=103, salt=salt)
    start = datetime.now(UTC)
    run_bronze(spark, cfg)
    end = datetime.now(UTC) + timedelta(seconds=1)
    crashes = 0
    for point, step in (("silver.after_events", lambda: run_silver(spark, start, end)),
                        ("gold.before_merge", lambda: run_gold(spark, start, datetime.now(UTC)))):
        crashes += _crashed(point, step)
        step()  # the retry, for the same interval
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
    return drill


# 4 ------------------------------------------------------------------------------------------------

#: A fixed hour for drill 4's scheduler: its history is the drill's own, so the runs are the same every time.
OUTAGE_HOUR = (datetime(2026, 1, 2, 0, tzinfo=UTC), datetime(2026, 1, 2, 1, tzinfo=UTC))


def kafka_down_under_the_scheduler(spark: SparkSession, cfg: Settings, salt: int, runs_dir: Path) -> Drill:
    """The broker stopped while the scheduler runs Bronze: retries, the alert, then the catch-up."""
    drill = Drill(4, "Kafka down under the scheduler", "the broker stopped while the scheduler ran Bronze")
    own = replace(cfg, runs_dir=runs_dir / f"drill-4-{salt:x}")
    scheduler = Scheduler(own, Retry(attempts=3, delay_s=1), say=lambda line: None)
    stack.down(cfg, ["kafka"])
    try:
        down = scheduler.run(*OUTAGE_HOUR)
    finally:
        stack.up(cfg, ["kafka"], quiet=True)
    back = scheduler.run(*OUTAGE_HOUR)
    history = RunHistory(own).frame()
    logged = [json.loads(line) for line in (own.runs_dir / "alerts.log").read_text().splitlines()]
    # the failed run's alert; a stale layer's (freshness, checked after each pass) is an alert of its own
    alert_lines = [doc for doc in logged if "delivery" not in doc and not doc["job"].startswith("freshness:")]
    _refresh(spark)
    drill.evidence = {
        "failed attempts while down": len(down.attempts), "alerts": len(alert_lines),
        "runs after Kafka was back": ", ".join(f"{p.job.name} {'ok' if o.ok else 'failed'}"
                                               for p, _, o in back.attempts),
        "history rows": len(history),
    }
    drill.expected = {"failed attempts while down": 3, "alerts": 1,
                      "runs after Kafka was back": "bronze ok, silver ok", "history rows": 5}
    drill.checks = [kafka_accounted(spark, cfg), offsets_tile(spark, cfg), silver_covers(spark, *OUTAGE_HOUR)]
    drill.details["run history"] = history[["job", "interval_start", "attempt", "status"]]
    return drill


# 5 ------------------------------------------------------------------------------------------------

def flink_taskmanager_killed(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """The stream's taskmanager SIGKILLed mid-stream: the job resumes from its checkpoint, a Spark
    Bronze run covers the records meanwhile, and both Bronze tables end with the same event_ids."""
    drill = Drill(5, "Flink taskmanager killed", "the stream job's taskmanager SIGKILLed mid-stream")
    cfg = drill_cfg(cfg, 5, salt)
    # One subtask per taskmanager: in cluster mode the job spans both, and the killed one holds half.
    job = StreamJob(name=f"drill-5-{salt:x}", topic=cfg.events_topic, group_id=cfg.events_topic,
                    checkpoint_interval="2s", parallelism=cfg.taskmanagers)
    job_id = lifecycle.start(cfg, job)
    flink = FlinkRest(cfg)
    try:
        spread = len(flink.job_taskmanagers(job_id))
        manifest = _traffic(cfg, 8000, seed=105, salt=salt)
        poll(lambda: not lifecycle.read_table(cfg, STREAM_EVENTS, f"kafka_topic == '{cfg.events_topic}'",
                                              ("event_id",)).empty, timeout_s=120,
             timed_out=lambda _: FlinkJobError(f"drill 5: the stream committed no row of {cfg.events_topic} in 120 s"))
        stack.kill(cfg, "flink-taskmanager")
        run_bronze(spark, cfg)  # the batch path covers the stream's gap while it is down
        stack.up(cfg, ["flink-taskmanager"], quiet=True)
        lifecycle.wait_caught_up(cfg, job_id, job, timeout_s=300, progress=False)
        restored = flink.checkpoints(job_id)["counts"]["restored"]
    finally:
        lifecycle.cancel(cfg, job_id)
    both = lifecycle.compare_with_bronze(cfg, spark)
    drill.evidence = {"taskmanagers running the job": spread, "restored from a checkpoint": restored >= 1, **both}
    drill.expected = {"taskmanagers running the job": cfg.taskmanagers, "restored from a checkpoint": True,
                      "flink stream rows": manifest.distinct_events,
                      "spark bronze rows": manifest.distinct_events, "only in the stream": 0, "only in bronze": 0,
                      "repeated in the stream": 0}
    drill.checks = _bronze_checks(spark, cfg)
    return drill


# 6 ------------------------------------------------------------------------------------------------

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


def two_runs_at_once(spark: SparkSession, cfg: Settings, salt: int, runs_dir: Path) -> Drill:
    """Two Bronze runs over the same new records, then two Silver and two Gold runs, each pair at once."""
    drill = Drill(6, "Two runs at once", "two Bronze, two Silver and two Gold runs raced over the same rows")
    cfg = drill_cfg(cfg, 6, salt)
    manifest = _traffic(cfg, 1000, seed=106, salt=salt)
    meet = runs_dir / f"drill-6-{salt:x}"
    start = datetime.now(UTC)
    bronze = _at_once([lambda s: run_bronze(s, cfg)] * 2, spark, "bronze.before_events", meet / "bronze")
    end = datetime.now(UTC) + timedelta(seconds=1)
    silver = _at_once([lambda s: run_silver(s, start, end)] * 2, spark, "silver.before_merge", meet / "silver")
    gold = _at_once([lambda s: run_gold(s, start, datetime.now(UTC))] * 2, spark, "gold.before_merge",
                    meet / "gold")
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
    return drill


# 7 ------------------------------------------------------------------------------------------------

NOT_UTF8 = b'{"event_id": "\xff\xfe\xfd", "user_id": "latin-1 phone"}'
BAD_BURST = TrafficShape(invalid_share=0.1, malformed_share=0.1)


def bad_input_burst(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """A burst of malformed and schema-violating records, one of them not even UTF-8, among good ones."""
    drill = Drill(7, "A burst of bad records", "10% malformed, 10% invalid, one record not UTF-8")
    cfg = drill_cfg(cfg, 7, salt)
    manifest = _traffic(cfg, 1000, seed=107, salt=salt, shape=BAD_BURST)
    producer = connect_producer(cfg.kafka_bootstrap_servers, "drill-7")
    producer.produce(cfg.events_topic, key=b"latin-1 phone", value=NOT_UTF8, partition=0)
    producer.flush(30)
    start = datetime.now(UTC)
    run_bronze(spark, cfg)
    end = datetime.now(UTC) + timedelta(seconds=1)
    run_silver(spark, start, end)
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
    return drill


# 8 ------------------------------------------------------------------------------------------------

def late_event_after_gold(spark: SparkSession, cfg: Settings, salt: int) -> Drill:
    """An event three days old arrives after Gold already ran for its day; the next Gold run corrects it."""
    drill = Drill(8, "A late event after Gold ran", "an event 3 days old arrived after its day's Gold")
    cfg = drill_cfg(cfg, 8, salt)
    user = f"drill-8-{salt:x}"
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)

    def send(n: int, first: int) -> None:
        producer = connect_producer(cfg.kafka_bootstrap_servers, "drill-8")
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
    before = layers()
    send(1, 4)  # the phone that was offline for three days
    after = layers()
    drill.evidence = {"gold total for that day before": before, "after the late event": after}
    drill.expected = {"gold total for that day before": 3, "after the late event": 4}
    drill.checks = [_gold_check(spark, since)]
    return drill


# 9 ------------------------------------------------------------------------------------------------

def bounded_backlog(spark: SparkSession, cfg: Settings, salt: int, events: int = 4000,
                    max_records: int = 1000) -> Drill:
    """A backlog drained in runs of at most `max_records`: no gap, no overlap, every record once."""
    drill = Drill(9, "A backlog in bounded runs", f"a backlog of {events:,} requests, runs of {max_records:,}")
    cfg = drill_cfg(cfg, 9, salt)
    manifest = _traffic(cfg, events, seed=109, salt=salt)
    reads = []
    while (run := run_bronze(spark, cfg, max_records=max_records)).records_read:
        reads.append(run.records_read)
    drill.evidence = {"runs": len(reads), "largest run": max(reads, default=0), **_landed(spark, cfg)}
    drill.details["records read per run"] = pd.DataFrame({"run": range(1, len(reads) + 1), "records": reads})
    drill.expected = {"runs": -(-manifest.records // max_records), "largest run": max_records,
                      **_expected_bronze(manifest)}
    drill.checks = _bronze_checks(spark, cfg)
    return drill


def summary(drills: list[Drill]) -> pd.DataFrame:
    """The closing table: drill, what broke, recovered, the evidence figures."""
    return pd.DataFrame([d.summary() for d in sorted(drills, key=lambda d: d.number)]).set_index("drill")


def show_summary(drills: list[Drill]) -> None:
    """Display the closing table and record it in the output, where `make run`'s summary reads it."""
    table = summary(drills)
    record = {"drills": {row.Index: {"recovered": row.recovered == "yes", "evidence": row.evidence}
                         for row in table.itertuples()}}
    display(table, metadata={RECORD_KEY: record})
