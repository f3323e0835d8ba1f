"""STACK=external against a real stack that another process runs (here the session's embedded stack, as
compose's containers are to a notebook in JupyterLab): the workbook asks each service and starts none,
and a service that is down is named with its address.

The external runs get a STACK_HOME of their own, empty like a container's: no pid file of the running
stack to find, so the only thing that keeps them from starting services is the mode itself (the same
command in the embedded mode tries to, and is refused by the taken port).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lib import stack
from lib.config import ROOT, Settings
from lib.jobs.kernel import KERNEL_NAME
from lib.kafka import ensure_topic
from lib.stack.flink import flink_config
from lib.stream import lifecycle
from lib.stream.job import StreamJob
from lib.stream.rest import FlinkRest

pytestmark = pytest.mark.integration


def _lib(home: Path, mode: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "STACK": mode, "STACK_HOME": str(home), "RUNS_DIR": str(home / "runs")}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout, check=False)


def _pids(cfg: Settings) -> dict[str, int | None]:
    return {row.service: row.pid for row in stack.status(cfg)}


def _started_in(home: Path) -> list[str]:
    """The pid files a stack with this STACK_HOME wrote: one per service it started."""
    return sorted(p.name for p in (home / "run").glob("*.pid")) if (home / "run").exists() else []


def test_external_mode_runs_the_notebook_and_a_job_on_a_stack_it_did_not_start(live_stack: Settings,
                                                                               tmp_path: Path) -> None:
    before = _pids(live_stack)
    assert all(before.values()), before

    # The embedded mode, with no pid file to find, would start the stack: the taken port refuses it.
    embedded = _lib(tmp_path / "embedded", "embedded", "lib", "stack", "up", "--service", "kafka", timeout=120)
    assert embedded.returncode != 0 and "port" in embedded.stderr.lower(), embedded.stderr[-1500:]

    home = tmp_path / "external"
    asked = _lib(home, "external", "lib", "stack", "up")
    assert asked.returncode == 0, asked.stderr[-1500:]
    assert "answers (STACK=external)" in asked.stdout

    seed = random.SystemRandom().randrange(10**9)  # events no other test or notebook produces
    executed = tmp_path / "01_produce.ipynb"
    notebook = _lib(home, "external", "papermill", "notebooks/01_produce.ipynb", str(executed),
                    "-k", KERNEL_NAME, "-p", "EVENTS", "40", "-p", "SEED", str(seed), "--no-progress-bar")
    assert notebook.returncode == 0, notebook.stderr[-3000:]

    bronze = _lib(home, "external", "lib", "run", "bronze")
    assert bronze.returncode == 0, bronze.stderr[-3000:]

    assert _started_in(home) == []
    assert _pids(live_stack) == before


def test_external_mode_names_a_stopped_kafka_with_its_address(live_stack: Settings, tmp_path: Path) -> None:
    stack.down(live_stack, ["kafka"])
    try:
        for args in (("lib", "stack", "up"), ("lib", "run", "bronze")):
            refused = _lib(tmp_path, "external", *args, timeout=120)
            assert refused.returncode != 0
            assert f"kafka ({live_stack.kafka_bootstrap_servers})" in refused.stderr, refused.stderr[-1500:]
            assert "did not answer" in refused.stderr
        assert _started_in(tmp_path) == []
        assert "kafka" not in stack.running(live_stack)
    finally:
        stack.up(live_stack, quiet=True)


def test_external_mode_submits_the_stream_from_a_stack_home_no_flink_of_its_own_wrote(live_stack: Settings,
                                                                                      tmp_path: Path) -> None:
    """A container's PyFlink client has no cluster config or lib folder of this stack: the submission writes a
    client-only one (the connectors on its classpath) and the job runs on the cluster with the cluster's own
    checkpoint storage."""
    external = replace(live_stack, stack_home=tmp_path, external=True)
    topic = f"test-external-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, 1)
    flink = FlinkRest(live_stack)
    job = StreamJob(name=f"external-{topic}", topic=topic, group_id=topic, checkpoint_interval="2s")
    job_id = lifecycle.start(external, job, fresh=True)
    try:
        assert flink.job(job_id)["state"] == "RUNNING"
        checkpoint = urlparse(flink.wait_for_checkpoint(job_id)["external_path"]).path
        assert checkpoint.startswith(urlparse(flink_config(live_stack)["execution"]["checkpointing"]["dir"]).path)
    finally:
        flink.cancel(job_id)
    assert _started_in(tmp_path) == []
