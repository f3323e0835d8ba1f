"""Throughput: a million requests through `python -m lib run bronze`, then silver and gold over the whole range.

On the private bench stack (bench.medallion: its own ports and STACK_HOME), the way an operator runs the
jobs: each one a `python -m lib run` process (papermill, the kernel, Spark's start and the job's own checks
included), on tables dropped beforehand. The topic is produced once and kept: a second run of the benchmark
reads the same records again. Goals from the throughput issue: the three together within 150 s; Bronze
>= 20k records/s, Silver >= 30k, Gold >= 100k.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

from tabulate import tabulate

from bench.medallion import PRIVATE_HOME, RESULTS, private_settings
from lib import stack
from lib.config import ROOT
from lib.kafka import end_offsets

REQUESTS = int(os.environ.get("BENCH_REQUESTS") or 1_000_000)
GOAL_TOTAL_S = 150
GOAL_RECORDS_PER_S = {"bronze": 20_000, "silver": 30_000, "gold": 100_000}
WHOLE_RANGE = ["--start", "2000-01-01", "--end", "2100-01-01"]


def drop_medallion_tables(cfg) -> None:
    """Every table of the three layers, purged through the catalog (PyIceberg: no Spark needed)."""
    from lib.medallion.catalog import catalog

    cat = catalog(cfg)
    for namespace in ("bronze", "silver", "gold"):
        if (namespace,) in cat.list_namespaces():
            for ident in cat.list_tables(namespace):
                cat.purge_table(ident)


def main() -> dict:
    from lib.traffic.produce import produce

    # Every service on ports of its own (a job's notebook checks the whole stack is up, Flink included),
    # so the benchmark runs beside the workbook's stack without touching it.
    cfg = replace(private_settings(), flink_rest_url="http://127.0.0.1:18081", flink_rpc_port=16123,
                  flink_blob_port=16124)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap_servers,
           "ICEBERG_REST_URI": cfg.iceberg_rest_uri, "ROMAN_SERVICE_URL": cfg.roman_service_url,
           "FLINK_REST_URL": cfg.flink_rest_url, "FLINK_RPC_PORT": str(cfg.flink_rpc_port),
           "FLINK_BLOB_PORT": str(cfg.flink_blob_port), "STACK_HOME": str(PRIVATE_HOME),
           "ICEBERG_WAREHOUSE": cfg.iceberg_warehouse, "RUNS_DIR": str(PRIVATE_HOME / "runs")}
    stack.up(cfg, quiet=True)
    try:
        records = sum(end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic).values())
        if records < REQUESTS:  # the topic is kept between runs: produce only what is missing
            produce(cfg, REQUESTS - records if records else REQUESTS, seed=1_000_001, progress=False, save=False)
            records = sum(end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic).values())
        drop_medallion_tables(cfg)
        seconds: dict[str, float] = {}
        for job, args in (("bronze", []), ("silver", WHOLE_RANGE), ("gold", WHOLE_RANGE)):
            began = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "lib", "run", job, *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            seconds[job] = round(time.monotonic() - began, 1)
            if done.returncode != 0:
                raise RuntimeError(f"{job} failed: {done.stderr[-2000:]}")
    finally:
        stack.down(cfg)
    total = round(sum(seconds.values()), 1)
    result = {"benchmark": "throughput", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "records": records, "seconds": seconds, "total_s": total, "goal_total_s": GOAL_TOTAL_S,
              "records_per_s": {job: round(records / s) for job, s in seconds.items()},
              "goal_records_per_s": GOAL_RECORDS_PER_S}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(result, indent=1))
    rows = [(job, seconds[job], f"{records / seconds[job]:,.0f}", f"{GOAL_RECORDS_PER_S[job]:,}",
             "yes" if records / seconds[job] >= GOAL_RECORDS_PER_S[job] else "NO") for job in seconds]
    rows.append(("all three", total, "", f"<= {GOAL_TOTAL_S} s", "yes" if total <= GOAL_TOTAL_S else "NO"))
    print(tabulate(rows, headers=["job (python -m lib run)", "seconds", "records/s", "goal", "met"]))
    print(f"\n{records:,} records in the topic; each job includes papermill, the kernel, Spark's start and its checks")
    return result
