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
from lib.flink_cluster import flink_environment
from lib.process import StackError

SUBMIT_TIMEOUT_S = 300


class FlinkJobError(RuntimeError):
    """A Flink job could not be submitted or did not reach the expected state."""


def _rest(path: str, method: str = "GET") -> dict:
    req = urllib.request.Request(f"{settings().flink_rest_url}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if body else {}


def client_config(cfg: Settings, job_name: str, parallelism: int = 1, checkpoint_interval: str = "10s") -> dict:
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
    }


def submit_sql(statements: list[str], job_name: str, parallelism: int = 1, checkpoint_interval: str = "10s") -> str:
    """Execute SQL statements on the session cluster; returns the id of the job the last INSERT started."""
    cfg = settings()
    python = cfg.flink_venv / "bin" / "python"
    if not python.exists():
        raise StackError(f"{python} is missing: run `make setup` to build the Flink virtualenv.")
    request = {"statements": statements, "config": client_config(cfg, job_name, parallelism, checkpoint_interval)}
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


def wait_for_state(job_id: str, states: set[str], timeout_s: float = 120.0) -> str:
    """Poll until the job is in one of `states`; a FAILED job raises with its root exception."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = job(job_id)["state"]
        if state in states:
            return state
        if state == "FAILED":
            root = _rest(f"/jobs/{job_id}/exceptions").get("root-exception", "")
            raise FlinkJobError(f"job {job_id} FAILED: {root[:2000]}")
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id} stayed {state} for {timeout_s:.0f}s; expected one of {sorted(states)}")


def cancel(job_id: str, timeout_s: float = 60.0) -> str:
    """Cancel a job and wait until it is CANCELED (or already finished)."""
    state = job(job_id)["state"]
    if state in ("CANCELED", "FINISHED", "FAILED"):
        return state
    _rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")
    return wait_for_state(job_id, {"CANCELED", "FINISHED"}, timeout_s)


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
