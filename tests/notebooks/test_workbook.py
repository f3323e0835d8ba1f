"""The workbook end to end, the way the recommenders project tests its notebooks.

Papermill executes 01 -> 05 with small injected parameters on the real stack, on a topic, a seed
and a stream job of this test's own (03 compares Bronze with 02's stream on that topic), and the
test reads the figures each notebook recorded (lib.workbook.notebook.record) and checks them against the
producer's manifest. nbval, in the same session, executes all seven committed notebooks at full
size; 06's nine drills and 07's migration run there only, once. Each run takes a seed of its own (event_ids follow
from the seed, and Bronze keeps an event_id once across topics), so the test can run again on the
same stack and never shares events with nbval's notebooks or an earlier run.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from lib.config import Settings
from lib.jobs.runner import run_notebook
from lib.kafka import ensure_topic


def _run(name: str, params: dict[str, Any], folder: Path) -> dict[str, Any]:
    outcome = run_notebook(name, params, folder / name, progress=False)
    assert outcome.ok, f"{name} ({params}) failed in cell {outcome.failed_cell}: {outcome.error}"
    return outcome.figures


def test_the_notebooks_end_to_end_with_small_parameters(live_stack: Settings, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = uuid.uuid4()
    topic = f"nbtest-{run_id.hex[:8]}"
    seed = 10_000 + run_id.int % 1_000_000  # nbval's notebooks use seeds below 1,000
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, live_stack.events_partitions)
    monkeypatch.setenv("EVENTS_TOPIC", topic)  # the kernels papermill starts inherit it

    produced = _run("01_produce.ipynb", {"EVENTS": 300, "SEED": seed}, tmp_path)
    _run("02_flink_stream.ipynb", {"LIVE_SECONDS": 70, "LIVE_RATE": 20, "SEED": seed,
                                   "STREAM_NAME": f"{topic}-stream"}, tmp_path)
    bronze = _run("03_bronze.ipynb", {"SEED": seed}, tmp_path)
    silver = _run("04_silver.ipynb", {"SEED": seed}, tmp_path)
    gold = _run("05_gold.ipynb", {"SEED": seed, "LATE_EVENTS": 150}, tmp_path)

    expected = produced["expected"]
    assert produced["records"] > produced["distinct_events"] == expected["bronze.conversion_events"]
    # 03: the first run read 01's batch (and 02's live traffic) with its duplicates; nothing after it inserted.
    assert bronze["first_records_read"] >= produced["records"]
    assert bronze["first_duplicates"] >= produced["duplicates"]
    assert bronze["manifest_events"] == bronze["batch_events_found"] == expected["bronze.conversion_events"]
    assert bronze["batch_dead_letters_found"] == expected["bronze.dead_letter"]
    assert bronze["rerun_inserted"] == bronze["redelivery_inserted"] == 0
    # 04: 01's valid requests in Silver, its invalid events rejected.
    assert silver["manifest_requests"] == silver["batch_silver_found"] == expected["silver.conversion_events"]
    assert silver["batch_rejected_found"] == expected["silver.rejected_events"]
    # 05: the naive overwrite kept only the late interval's count; Gold kept the truth.
    assert gold["naive_key_naive"] < gold["naive_key_truth"] == gold["naive_key_gold"]
