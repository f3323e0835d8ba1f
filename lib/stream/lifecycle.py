"""The stream job's lifecycle: submit, start (or resume), restart, cancel, park, catch up, read back.

Submission runs `lib.stream.submit` in .venv-flink, a separate interpreter with PyFlink, against
the session cluster; everything after that is Flink's REST API (lib.stream.rest), so the notebooks'
kernel needs no PyFlink at all.

Restore points (where a new run of a job resumes its offsets and dedup state) come from two
services, never from the cluster's files: the cluster's REST API, which remembers the checkpoints
and savepoints of every job since it started, and the Iceberg table `ops.stream_restore_points`,
where a cancel, a restart or a `stack down` records the newest one, so it survives a restart of
the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo
from tqdm import tqdm

from lib.config import ROOT, Settings
from lib.errors import FlinkJobError, StackError
from lib.kafka import committed_offsets, end_offsets
from lib.medallion.catalog import catalog, keep_raw_payload
from lib.medallion.tables import BRONZE_EVENTS
from lib.plumbing.waits import poll
from lib.stack.flink import client_environment
from lib.stream.job import JOB_NAME, STREAM_DEAD_LETTER, STREAM_EVENTS, STREAM_TABLES, StreamJob, statements
from lib.stream.rest import ACTIVE_STATES, FlinkRest

if TYPE_CHECKING:  # the stream's helpers need no Spark; only the comparison takes a session
    from pyspark.sql import SparkSession

SUBMIT_TIMEOUT_S = 300
RESTORE_POINTS = "ops.stream_restore_points"
_RESTORE_SCHEMA = pa.schema([
    pa.field("job_name", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # checkpoint | savepoint
    pa.field("path", pa.string(), nullable=False),
    pa.field("job_id", pa.string(), nullable=False),
    pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def client_config(cfg: Settings, job_name: str, parallelism: int = 1, checkpoint_interval: str = "10s",
                  extra: dict[str, str] | None = None) -> dict:
    """Job settings for a remote submission (config.yaml's job defaults do not apply on this route)."""
    addr = cfg.flink_address
    return {
        "execution.target": "remote",
        "rest.address": addr.host,
        "rest.port": addr.port,
        "execution.attached": "false",
        "pipeline.name": job_name,
        "parallelism.default": parallelism,
        "execution.checkpointing.interval": checkpoint_interval,
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        **(extra or {}),
    }


def submit_sql(cfg: Settings, statements: list[str], job_name: str, parallelism: int = 1,
               checkpoint_interval: str = "10s", extra: dict[str, str] | None = None) -> str:
    """Execute SQL statements on the session cluster; returns the id of the job the last INSERT started."""
    python = cfg.flink_venv / "bin" / "python"
    if not python.exists():
        raise StackError(f"{python} is missing: run `make setup` to build the Flink virtualenv.")
    request = {"statements": statements,
               "config": client_config(cfg, job_name, parallelism, checkpoint_interval, extra)}
    # The submitting interpreter must not see .venv's packages (its pyarrow would shadow PyFlink's).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    proc = subprocess.run(
        [str(python), "-m", "lib.stream.submit"],
        input=json.dumps(request), capture_output=True, text=True, cwd=ROOT,
        env={**env, **client_environment(cfg)}, timeout=SUBMIT_TIMEOUT_S, check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise FlinkJobError(f"Submitting {job_name!r} to {cfg.flink_rest_url} failed:\n{tail}")
    job_id = json.loads(lines[-1])["job_id"]
    if job_id is None:
        raise FlinkJobError(f"{job_name!r}: no statement started a job (is there an INSERT?)")
    return job_id


def submit(cfg: Settings, job: StreamJob, restore_from: str | None = None) -> str:
    """Start the job on the session cluster; `restore_from` is a checkpoint or savepoint path. Returns its id."""
    keep_raw_payload(cfg, STREAM_DEAD_LETTER)
    extra = job.config()
    if restore_from:
        extra["execution.state-recovery.path"] = restore_from
    return submit_sql(cfg, statements(cfg, job), job.name, parallelism=job.parallelism,
                      checkpoint_interval=job.checkpoint_interval, extra=extra)


def _newest_state(flink: FlinkRest, job_id: str) -> tuple[int, str, str] | None:
    """(time, kind, path) of the newest completed checkpoint or savepoint of a job, as Flink reports it."""
    latest = flink.checkpoints(job_id).get("latest") or {}
    found = []
    for kind, key in (("checkpoint", "completed"), ("savepoint", "savepoint")):
        point = latest.get(key) or {}
        if point.get("external_path"):
            found.append((int(point.get("latest_ack_timestamp", 0)), kind, point["external_path"]))
    return max(found) if found else None


def record_restore_point(cfg: Settings, name: str, job_id: str, kind: str, path: str) -> None:
    """Append a restore point of the job to ops.stream_restore_points (created on first use)."""
    lake = catalog(cfg)
    lake.create_namespace_if_not_exists("ops")
    table = lake.create_table_if_not_exists(RESTORE_POINTS, schema=_RESTORE_SCHEMA)
    row = {"job_name": [name], "kind": [kind], "path": [path], "job_id": [job_id],
           "recorded_at": [datetime.now(UTC)]}
    table.append(pa.Table.from_pydict(row, schema=_RESTORE_SCHEMA))


def restore_point(cfg: Settings, name: str) -> str | None:
    """The newest state an earlier run of this job left (a checkpoint kept on cancel, or a savepoint), or None.

    Newest of: what the cluster reports for its ended jobs of this name (a run that completed no
    checkpoint committed nothing, so an older one is still right), and what was recorded in
    ops.stream_restore_points before the cluster last stopped.
    """
    flink = FlinkRest(cfg)
    candidates: list[tuple[int, str]] = []
    for found in flink.jobs():
        if found["name"] == name and found["state"] not in ACTIVE_STATES:
            newest = _newest_state(flink, found["jid"])
            if newest:
                candidates.append((newest[0], newest[2]))
    try:
        by_name = EqualTo("job_name", name)  # type: ignore[call-arg, arg-type]  # PyIceberg's positional form
        recorded = catalog(cfg).load_table(RESTORE_POINTS).scan(row_filter=by_name).to_arrow()
    except NoSuchTableError:
        recorded = None
    if recorded is not None and recorded.num_rows:
        newest_row = max(recorded.to_pylist(), key=lambda r: r["recorded_at"])
        candidates.append((int(newest_row["recorded_at"].timestamp() * 1000), newest_row["path"]))
    return max(candidates)[1] if candidates else None


#: The snapshot-summary key where Iceberg's Flink sink writes the id of the job that committed it.
FLINK_JOB_ID = "flink.job-id"


def resume_snapshots(cfg: Settings) -> dict[str, datetime]:
    """Per stream table, the commit time of the oldest snapshot a Flink job may need to resume.

    Iceberg's Flink sink, resumed from a checkpoint or savepoint, walks back from the table's current
    snapshot to the newest one its job committed, to learn which checkpoint already landed; if that
    snapshot was expired it commits the checkpoint's files again, and the stream's rows double. The
    jobs that may resume: every running job, and the job of each name's newest restore point.
    Table maintenance expires no snapshot at or after the time returned here."""
    flink = FlinkRest(cfg)
    jobs = {found["jid"] for found in flink.jobs() if found["state"] in ACTIVE_STATES}
    lake = catalog(cfg)
    try:
        points = lake.load_table(RESTORE_POINTS).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        points = []
    newest: dict[str, dict] = {}
    for point in points:
        if point["job_name"] not in newest or point["recorded_at"] > newest[point["job_name"]]["recorded_at"]:
            newest[point["job_name"]] = point
    jobs |= {point["job_id"] for point in newest.values()}
    keep = {}
    for name in STREAM_TABLES:
        try:
            snapshots = lake.load_table(name).snapshots()
        except NoSuchTableError:
            continue
        by_job: dict[str, int] = {}
        for snapshot in snapshots:
            job_id = snapshot.summary.get(FLINK_JOB_ID) if snapshot.summary is not None else None
            if job_id is not None and job_id in jobs:
                by_job[job_id] = max(by_job.get(job_id, 0), snapshot.timestamp_ms)
        if by_job:
            keep[name] = datetime.fromtimestamp(min(by_job.values()) / 1000, UTC)
    return keep


def start(cfg: Settings, job: StreamJob | None = None, fresh: bool = False) -> str:
    """The job's id: the one already running under its name, else a submission that resumes from the
    newest restore point of an earlier run (offsets and dedup state), else a fresh one that reads
    from the group's committed offsets (the earliest, the first time).

    `fresh`: ignore every restore point (after a change of the job's SQL that its state cannot
    follow); the group's committed offsets still say where to read from, the dedup state starts empty.
    """
    job = job or StreamJob()
    flink = FlinkRest(cfg)
    job_id = flink.running_job(job.name)
    if job_id is None:
        job_id = submit(cfg, job, restore_from=None if fresh else restore_point(cfg, job.name))
    flink.wait_for_tasks(job_id)
    return job_id


def restart(cfg: Settings, job_id: str, job: StreamJob | None = None) -> str:
    """Stop the job with a savepoint and start it again from there; returns the new job's id.

    What the restarted job keeps: the Kafka offsets, the dedup state (every event_id seen and not
    yet expired) and the Iceberg files of the savepoint. Use it to change a parameter that keeps
    the job's shape (a TTL, the checkpoint interval) without losing or doubling anything.
    """
    job = job or StreamJob()
    flink = FlinkRest(cfg)
    savepoint = flink.stop_with_savepoint(job_id)
    record_restore_point(cfg, job.name, job_id, "savepoint", savepoint)
    new_id = submit(cfg, job, restore_from=savepoint)
    flink.wait_for_tasks(new_id)
    return new_id


def cancel(cfg: Settings, job_id: str) -> str:
    """Cancel the job (its latest checkpoint is retained) and record that checkpoint; returns the state."""
    flink = FlinkRest(cfg)
    name = flink.job(job_id)["name"]
    state = flink.cancel(job_id)
    newest = _newest_state(flink, job_id)
    if newest:
        record_restore_point(cfg, name, job_id, newest[1], newest[2])
    return state


def park(cfg: Settings, names: tuple[str, ...] = (JOB_NAME,)) -> dict[str, str]:
    """Stop each running job of these names with a savepoint and record it: what `stack down` does
    before it stops the cluster, so the next start resumes exactly there. Returns {name: savepoint}."""
    flink = FlinkRest(cfg)
    parked = {}
    for name in names:
        job_id = flink.running_job(name)
        if job_id:
            parked[name] = flink.stop_with_savepoint(job_id)
            record_restore_point(cfg, name, job_id, "savepoint", parked[name])
    return parked


def wait_caught_up(cfg: Settings, job_id: str, job: StreamJob | None = None, timeout_s: float = 300.0,
                   progress: bool = True) -> dict[int, int]:
    """Wait until the job has consumed the topic up to its end offsets *now*, and committed it to Iceberg.

    The Kafka source commits the group's offsets when a checkpoint completes, the same moment the
    Iceberg sinks commit their files; one more checkpoint after that makes sure both are done.
    Returns the end offsets that were waited for.
    """
    job = job or StreamJob()
    flink = FlinkRest(cfg)
    topic = job.topic or cfg.events_topic
    ends = end_offsets(cfg.kafka_bootstrap_servers, topic)
    total = sum(ends.values())
    began = time.monotonic()
    with tqdm(total=total, desc="flink caught up", unit="rec", disable=not progress, mininterval=0.5) as bar:
        def reached() -> int:
            done = committed_offsets(cfg.kafka_bootstrap_servers, job.group_id, topic, list(ends))
            count = sum(min(done.get(p, 0), end) for p, end in ends.items())
            bar.update(count - bar.n)
            return count

        poll(reached, timeout_s=timeout_s, until=lambda count: count >= total, timed_out=lambda count: FlinkJobError(
            f"job {job_id} ({flink.job(job_id)['state']}) consumed {count} of {total} records of {topic!r} in "
            f"{timeout_s:.0f}s. {flink.why(job_id)} More in the Flink UI at {cfg.flink_rest_url}"))
    latest = flink.latest_checkpoint(job_id)
    remaining = max(30.0, timeout_s - (time.monotonic() - began))
    flink.wait_for_checkpoint(job_id, after_id=latest["id"] if latest else 0, timeout_s=remaining)
    return ends


def read_table(cfg: Settings, name: str, row_filter: str | BooleanExpression | None = None,
               columns: tuple[str, ...] = ("*",)) -> pd.DataFrame:
    """A stream table as pandas, through PyIceberg (what is committed, not what a writer holds).

    `row_filter`: a PyIceberg filter string ("kafka_topic == 'x'") or expression (`In(...)`).
    """
    scan = catalog(cfg).load_table(name).scan(row_filter=row_filter or AlwaysTrue(), selected_fields=columns)
    return scan.to_pandas()


def compare_with_bronze(cfg: Settings, spark: SparkSession) -> dict[str, int]:
    """Event_ids of the events topic in the stream table against Spark's bronze.conversion_events."""
    topic = cfg.events_topic
    flink_rows = read_table(cfg, STREAM_EVENTS, f"kafka_topic == '{topic}'", ("event_id",)).event_id
    flink_ids = set(flink_rows)
    spark_ids = {r.event_id for r in spark.sql(
        f"SELECT event_id FROM {BRONZE_EVENTS} WHERE kafka_topic = '{topic}'").collect()}
    return {
        "flink stream rows": len(flink_ids),
        "spark bronze rows": len(spark_ids),
        "only in the stream": len(flink_ids - spark_ids),
        "only in bronze": len(spark_ids - flink_ids),
        "repeated in the stream": len(flink_rows) - len(flink_ids),
    }
