"""Flink jobs from the notebook side: submit SQL, list, wait for, and cancel jobs over the REST API.

Submission runs `lib.flink_submit` in .venv-flink, a separate interpreter with PyFlink, against the
session cluster; everything else is plain HTTP to the jobmanager, so the notebooks' kernel
needs no PyFlink at all.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from lib.config import ROOT, Settings, settings
from lib.flink_cluster import flink_environment, taskmanager_out
from lib.process import StackError

SUBMIT_TIMEOUT_S = 300


class FlinkJobError(RuntimeError):
    """A Flink job could not be submitted or did not reach the expected state."""


def _rest(path: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{settings().flink_rest_url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    return json.loads(text) if text else {}


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


def submit_sql(statements: list[str], job_name: str, parallelism: int = 1, checkpoint_interval: str = "10s",
               extra: dict[str, str] | None = None) -> str:
    """Execute SQL statements on the session cluster; returns the id of the job the last INSERT started."""
    cfg = settings()
    python = cfg.flink_venv / "bin" / "python"
    if not python.exists():
        raise StackError(f"{python} is missing: run `make setup` to build the Flink virtualenv.")
    config = client_config(cfg, job_name, parallelism, checkpoint_interval, extra)
    request = {"statements": statements, "config": config}
    proc = subprocess.run(
        [str(python), "-m", "lib.flink_submit"],
        input=json.dumps(request), capture_output=True, text=True, cwd=ROOT,
        env={**_base_env(), **flink_environment(cfg)}, timeout=SUBMIT_TIMEOUT_S, check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise FlinkJobError(f"Submitting {job_name!r} to {cfg.flink_rest_url} failed:\n{tail}")
    job_id = json.loads(lines[-1])["job_id"]
    if job_id is None:
        raise FlinkJobError(f"{job_name!r}: no statement started a job (is there an INSERT?)")
    return job_id


def _base_env() -> dict[str, str]:
    import os

    # The submitting interpreter must not see .venv's packages (its pyarrow would shadow PyFlink's).
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def jobs() -> list[dict]:
    """Every job the cluster knows, newest first: id, name, state, start time."""
    found = _rest("/jobs/overview").get("jobs", [])
    return sorted(found, key=lambda j: j.get("start-time", 0), reverse=True)


def job(job_id: str) -> dict:
    return _rest(f"/jobs/{job_id}")


def _raise_if_failed(job_id: str, state: str) -> None:
    """A FAILED job will not come back: raise with its root exception instead of waiting on."""
    if state == "FAILED":
        root = _rest(f"/jobs/{job_id}/exceptions").get("root-exception", "")
        raise FlinkJobError(f"job {job_id} FAILED: {root[:2000]}")


def wait_for_state(job_id: str, states: set[str], timeout_s: float = 120.0) -> str:
    """Poll until the job is in one of `states`; a FAILED job raises with its root exception."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = job(job_id)["state"]
        if state in states:
            return state
        _raise_if_failed(job_id, state)
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id} stayed {state} for {timeout_s:.0f}s; expected one of {sorted(states)}")


def wait_for_tasks(job_id: str, timeout_s: float = 120.0) -> None:
    """Wait until every task of a RUNNING job runs (a job is RUNNING while its tasks still deploy)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = job(job_id)
        if info["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in info.get("vertices", [])):
            return
        _raise_if_failed(job_id, info["state"])
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id}: not every task was RUNNING within {timeout_s:.0f}s")


def cancel(job_id: str, timeout_s: float = 60.0) -> str:
    """Cancel a job and wait until it is CANCELED (or already finished)."""
    state = job(job_id)["state"]
    if state in ("CANCELED", "FINISHED", "FAILED"):
        return state
    _rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")
    return wait_for_state(job_id, {"CANCELED", "FINISHED"}, timeout_s)


def stop_with_savepoint(job_id: str, timeout_s: float = 120.0) -> str:
    """Stop the job with a savepoint (a consistent snapshot taken as it stops); returns its path.

    The graceful way to restart or upgrade a job: unlike a cancel, nothing after the last
    checkpoint has to be read again, and the Iceberg sinks commit what the savepoint covers.
    """
    from lib.flink_cluster import flink_dir

    wait_for_tasks(job_id)  # a savepoint needs every task running, not only the job
    target = (flink_dir(settings()) / "savepoints").as_uri()
    trigger = _rest(f"/jobs/{job_id}/stop", method="POST", body={"drain": False, "targetDirectory": target})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _rest(f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
        if status.get("status", {}).get("id") == "COMPLETED":
            operation = status.get("operation", {})
            if "location" not in operation:
                cause = operation.get("failure-cause", {})
                first = str(cause.get("stack-trace", cause)).splitlines()[0][:500]
                raise FlinkJobError(f"stopping job {job_id} with a savepoint failed: {first}")
            wait_for_state(job_id, {"FINISHED", "CANCELED"}, timeout_s=max(5.0, deadline - time.monotonic()))
            return operation["location"]
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id}: the stop-with-savepoint did not complete within {timeout_s:.0f}s")


def checkpoints(job_id: str) -> dict:
    """The job's checkpoint statistics: counts, latest completed, history."""
    return _rest(f"/jobs/{job_id}/checkpoints")


def kafka_source_ddl(table: str, topic: str, group_id: str, columns: str = "`payload` STRING",
                     fmt: str = "raw", startup: str = "earliest-offset") -> str:
    """A Kafka source table on the events topic, addressed through the settings."""
    cfg = settings()
    return (
        f"CREATE TEMPORARY TABLE {table} ({columns}) WITH ("
        f"'connector' = 'kafka', 'topic' = '{topic}', "
        f"'properties.bootstrap.servers' = '{cfg.kafka_bootstrap_servers}', "
        f"'properties.group.id' = '{group_id}', 'scan.startup.mode' = '{startup}', 'format' = '{fmt}')"
    )


def running_job(name: str) -> str | None:
    """The id of the RUNNING (or restarting) job with this name, if any: a notebook re-run finds its job."""
    for found in jobs():
        if found["name"] == name and found["state"] in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING"):
            return found["jid"]
    return None


def latest_checkpoint(job_id: str) -> dict | None:
    """The job's latest completed checkpoint (id, external_path, state_size, end_to_end_duration), or None."""
    return (checkpoints(job_id).get("latest") or {}).get("completed")


def restored_from(job_id: str) -> str | None:
    """The checkpoint or savepoint this job's state was restored from, or None for a fresh start."""
    return ((checkpoints(job_id).get("latest") or {}).get("restored") or {}).get("external_path")


def wait_for_checkpoint(job_id: str, after_id: int = 0, timeout_s: float = 120.0) -> dict:
    """Wait for a completed checkpoint newer than `after_id`; returns it (what it covers is now committed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = latest_checkpoint(job_id)
        if done and done["id"] > after_id:
            return done
        _raise_if_failed(job_id, job(job_id)["state"])
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id}: no checkpoint after #{after_id} within {timeout_s:.0f}s")


def vertex_metrics(job_id: str) -> list[dict]:
    """Per operator chain: name, status, records in and out, and its current input watermark (ms or None)."""
    rows = []
    for vertex in job(job_id).get("vertices", []):
        marks = _rest(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
        values = [int(float(m["value"])) for m in marks if "currentInputWatermark" in m["id"]]
        low = min(values) if values else None
        rows.append({
            "operator": vertex["name"],
            "status": vertex["status"],
            "records_in": vertex["metrics"].get("read-records", 0),
            "records_out": vertex["metrics"].get("write-records", 0),
            # Long.MIN_VALUE means "no watermark yet".
            "watermark_ms": low if low is not None and low > -(2**62) else None,
        })
    return rows


def exceptions(job_id: str) -> list[str]:
    """The job's recent failures, newest first (a restarting job shows why here)."""
    history = _rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
    return [f"{e.get('exceptionName', '?')}: {str(e.get('stacktrace', '')).splitlines()[0][:300]}" for e in history]


def console_lines(tag: str, last: int | None = 10, tail_bytes: int = 4 << 20) -> list[str]:
    """Lines a print sink with this identifier wrote to the taskmanager's .out file.

    `last`: how many of the newest (None: every line in the last `tail_bytes` of the file, which
    grows for as long as the cluster runs).
    """
    out = taskmanager_out(settings())
    if not out.exists():
        return []
    with out.open("rb") as fh:
        fh.seek(max(0, out.stat().st_size - tail_bytes))
        text = fh.read().decode(errors="replace")
    prefix = f"{tag}> "
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    return found[-last:] if last else found
