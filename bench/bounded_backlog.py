"""The seed's "Spark OOM" row: a backlog of 1M requests drained with a 1 GiB driver, in bounded runs
against one unbounded run, on a private stack (bench.medallion's ports and home).

Each arm runs in its own process (the driver's heap is fixed when its JVM starts), with
SPARK_DRIVER_MEMORY=1g, on fresh tables, over the same topic. Figures: wall time, runs, the peak
RSS of the arm's process tree (Python driver, its JVM, Python workers), and for the bounded arm
the proof that the runs read the backlog with no gap and no overlap (the committed ranges tile
every partition from its earliest to its end offset) and that every record is accounted for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import psutil
from tabulate import tabulate

from bench import services
from bench.medallion import PeakMemory, private_settings
from bench.scale import sized, write_result
from lib.config import ROOT, Settings
from lib.kafka import ensure_topic
from lib.medallion.heap import HeapPeak

REQUESTS = sized(1_000_000, 2_000)
MAX_RECORDS = sized(200_000, 1_100)  # smoke: two bounded runs and the empty one
DRIVER_MEMORY = "1g"
#: A topic of its own per invocation (the private stack keeps its broker's data between invocations).
TOPIC = os.environ.get("BENCH_BACKLOG_TOPIC") or f"bench-backlog-{int(time.time())}"


def arm(bound: int | None) -> dict:
    """In the arm's own process: drain the topic into fresh tables, return what it saw."""
    from lib.medallion.bronze import run_bronze
    from lib.medallion.invariants import kafka_accounted, offsets_tile
    from lib.medallion.spark import spark_session
    from lib.medallion.tables import DDL, create_tables

    cfg = _cfg()
    spark = spark_session(cfg, "bench-backlog")
    for table in DDL:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")
    create_tables(spark)
    runs, read = 0, 0
    heap = HeapPeak(spark)
    while True:
        run = run_bronze(spark, cfg, max_records=bound)
        if run.records_read == 0:
            break
        runs, read = runs + 1, read + run.records_read
        if bound is None:
            break
    old_gen_peak_mib, heap_max_mib = heap.read()
    tiling = offsets_tile(spark, cfg)
    check = kafka_accounted(spark, cfg)
    return {"runs": runs, "records_read": read, "old_gen_peak_mib": old_gen_peak_mib, "heap_max_mib": heap_max_mib,
            "tiled": tiling.ok, "tiling": tiling.detail,
            "accounted": check.ok, "detail": check.detail}


def _cfg() -> Settings:
    return replace(private_settings(), events_topic=TOPIC)


def _run_arm(bound: int | None) -> dict:
    env = {**os.environ, "SPARK_DRIVER_MEMORY": DRIVER_MEMORY, "BENCH_BACKLOG_TOPIC": TOPIC}
    began = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "bench.bounded_backlog", "--arm", str(bound or 0)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory([]) as memory:  # this process's tree: the arm, its JVM and its Python workers
        out, err = child.communicate()
    seconds = time.monotonic() - began
    result: dict = {"exit_code": child.returncode, "seconds": round(seconds, 1),
                    "peak_rss_mib": round((memory.peak - psutil.Process().memory_info().rss) / 2**20)}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if child.returncode == 0 and lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (err.strip().splitlines() or ["(no output)"])[-1][:300]
    return result


def main() -> dict:
    from lib.traffic.produce import produce

    cfg = _cfg()
    with services(cfg, ["kafka", "iceberg-rest"]):
        ensure_topic(cfg.kafka_bootstrap_servers, TOPIC, cfg.events_partitions)
        manifest = produce(cfg, REQUESTS, seed=4242, progress=True, save=False)
        bounded = _run_arm(MAX_RECORDS)
        unbounded = _run_arm(None)
    result = {
        "benchmark": "bounded_backlog",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": REQUESTS, "records": manifest.records, "driver_memory": DRIVER_MEMORY,
        "max_records": MAX_RECORDS, "bounded": bounded, "unbounded": unbounded,
    }
    if bounded.get("peak_rss_mib") and unbounded.get("peak_rss_mib"):
        result["peak_rss_ratio_unbounded_over_bounded"] = round(unbounded["peak_rss_mib"] / bounded["peak_rss_mib"], 2)
    write_result("bounded_backlog", result)
    print(tabulate([(name, r["exit_code"], r.get("runs", "-"), r.get("records_read", "-"), r["seconds"],
                     r["peak_rss_mib"], f"{r.get('old_gen_peak_mib', '-')} / {r.get('heap_max_mib', '-')}",
                     r.get("tiling", "-"), r.get("accounted", r.get("error")))
                    for name, r in (("bounded", bounded), ("unbounded", unbounded))],
                   headers=["arm", "exit", "runs", "records read", "s", "peak RSS MiB", "old gen peak / heap MiB",
                            "offset ranges", "accounted"]))
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--arm"]:
        print(json.dumps(arm(int(sys.argv[2]) or None)))
    else:
        main()
