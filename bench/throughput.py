"""Throughput: a million requests through Bronze, Silver and Gold, and through the Flink stream.

On the private bench stack (bench.medallion's home, Flink on ports of its own), over a topic of its own
holding 1M produced requests (about 1.06M records: the usual duplicates, late and malformed records),
produced by the first invocation and kept. Every part starts from dropped tables; the figures are
measured side by side in one run:

1. Layers: `run_bronze`, then `run_silver` and `run_gold` over the whole range, in one Spark session
   (what a layer's own work costs), with the peak resident memory of the stack and this driver.
2. Bronze against a plain append: the same Kafka range read by Spark and appended, as it comes, to an
   unpartitioned Iceberg table (no classification, no dedup, no MERGE). Goal: Bronze <= 3.0x.
3. The operator's way: `python -m lib run bronze`, then `silver` and `gold`, each a process of its own
   (papermill, the kernel, Spark's start and the job's checks included). Goal: <= 100 s together.
4. The Flink job drains the 1M backlog from the earliest offset (its committed offsets reaching the end,
   a checkpoint included), then the same job with every sink a blackhole, then the job at parallelism 2
   (the workbook runs it at 1). Goals: >= 25k records/s and a ratio of the first two >= 0.5 (what the
   sinks cost).
5. The rule the Flink job runs (jars/rules, on the JVM) against the contract's Python rule over every record
   of the topic: the same reason, detail included, and the same text, or the benchmark fails.

The goals of bench/goals.py that this run measures are printed last, beside the figures they were set
against.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from tabulate import tabulate

from bench import goals, services
from bench.medallion import PeakMemory, private_settings, timed
from bench.scale import sized, write_result
from lib import stack
from lib.config import ROOT, Settings
from lib.kafka import end_offsets, ensure_topic
from lib.stream.job import StreamJob

REQUESTS = int(os.environ.get("BENCH_REQUESTS") or sized(1_000_000, 2_000))
GOAL_RECORDS_PER_S = {"bronze": 20_000, "silver": 30_000, "gold": 100_000}
GOAL_FLINK_RATIO = 0.5
WHOLE_RANGE = ["--start", "2000-01-01", "--end", "2100-01-01"]
EVER = (datetime(2000, 1, 1), datetime(2100, 1, 1))
#: The benchmark's own topic on the private broker, produced once (exactly REQUESTS requests) and kept.
TOPIC = f"bench-throughput-{REQUESTS}"
FLINK_TIMEOUT_S = 1800
#: The job at parallelism 2 beside it, at full size (a smoke run proves the same code with two arms).
PARALLEL_ARM = sized((("sinks, parallelism 2", False, 2),), ())
#: The job's own interval at full size; the smoke size waits for fewer seconds of checkpoints.
CHECKPOINT = sized(StreamJob.checkpoint_interval, "1s")


def bench_settings() -> Settings:
    """The private stack, Flink included (a job's notebook checks that the whole stack is up)."""
    return replace(private_settings(), flink_rest_url="http://127.0.0.1:18081", flink_rpc_port=16123,
                   flink_blob_port=16124, events_topic=TOPIC)


def drop_medallion_tables(cfg: Settings) -> None:
    """Every table of the three layers and the stream, purged through the catalog (PyIceberg: no Spark)."""
    from lib.medallion.catalog import catalog

    cat = catalog(cfg)
    for namespace in ("bronze", "silver", "gold", "bench"):
        if (namespace,) in cat.list_namespaces():
            for ident in cat.list_tables(namespace):
                cat.purge_table(ident)


def layers(cfg: Settings, pids: dict[str, list[int]]) -> dict:
    """Each layer's run over the whole topic in one session; then a plain append of the same range."""
    from lib.medallion.bronze import offset_ranges, read_kafka, run_bronze
    from lib.medallion.gold import run_gold
    from lib.medallion.silver import run_silver
    from lib.medallion.spark import spark_session
    from lib.medallion.tables import create_tables

    drop_medallion_tables(cfg)
    spark = spark_session(cfg, "bench-throughput")
    create_tables(spark)
    ranges = offset_ranges(spark, cfg, backfill=True)  # the whole topic, as the first Bronze run reads it
    try:
        with PeakMemory(pids["stack"]) as memory, PeakMemory(pids["spark's"]) as spark_only:
            seconds = {"bronze": timed(run_bronze, spark, cfg)[0], "silver": timed(run_silver, spark, *EVER)[0],
                       "gold": timed(run_gold, spark, *EVER)[0]}

        def append() -> None:
            spark.sql("CREATE NAMESPACE IF NOT EXISTS bench")
            read_kafka(spark, cfg, ranges).writeTo("bench.kafka_append").using("iceberg").createOrReplace()

        seconds["append"] = timed(append)[0]
    finally:
        spark.stop()
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()}, "peak_rss_mib": round(memory.peak / 2**20),
            "peak_rss_mib_without_flink": round(spark_only.peak / 2**20),
            "at_peak_mib": {kind: round(rss / 2**20) for kind, rss in sorted(memory.at_peak.items())}}


def cli(cfg: Settings) -> dict[str, float]:
    """The three jobs the operator's way, each a `python -m lib run` process, on dropped tables."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap_servers, "EVENTS_TOPIC": cfg.events_topic,
           "ICEBERG_REST_URI": cfg.iceberg_rest_uri, "ROMAN_SERVICE_URL": cfg.roman_service_url,
           "FLINK_REST_URL": cfg.flink_rest_url, "FLINK_RPC_PORT": str(cfg.flink_rpc_port),
           "FLINK_BLOB_PORT": str(cfg.flink_blob_port), "STACK_HOME": str(cfg.stack_home),
           "WAREHOUSE": cfg.warehouse, "ICEBERG_WAREHOUSE": cfg.iceberg_warehouse,
           "RUNS_DIR": str(cfg.stack_home / "runs")}
    drop_medallion_tables(cfg)
    seconds: dict[str, float] = {}
    for job, args in (("bronze", []), ("silver", WHOLE_RANGE), ("gold", WHOLE_RANGE)):
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "lib", "run", job, *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        seconds[job] = round(time.monotonic() - began, 1)
        if done.returncode != 0:
            raise RuntimeError(f"{job} failed: {done.stderr[-2000:]}")
    return seconds


def stream(cfg: Settings, records: int) -> dict[str, dict]:
    """The Flink job draining the whole topic from the earliest offset, with its sinks and with blackholes."""
    from lib.stream import lifecycle

    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    figures = {}
    arms = (("sinks", False, 1), ("blackhole", True, 1), *PARALLEL_ARM)
    for arm, blackhole, parallelism in arms:
        label = arm.replace(", parallelism ", "-p")
        job = StreamJob(name=f"bench-{label}-{stamp}", group_id=f"bench-{label}-{stamp}", blackhole=blackhole,
                        parallelism=parallelism, checkpoint_interval=CHECKPOINT)
        began = time.monotonic()
        job_id = lifecycle.start(cfg, job, fresh=True)
        running = time.monotonic()
        lifecycle.wait_caught_up(cfg, job_id, job, timeout_s=FLINK_TIMEOUT_S, progress=False)
        done = time.monotonic()
        lifecycle.cancel(cfg, job_id)
        figures[arm] = {"submit_s": round(running - began, 1), "consume_s": round(done - running, 1),
                        "records_per_s": round(records / (done - running))}
    return figures


def rule_agreement(cfg: Settings) -> dict:
    """Every record of the topic through both rules: what they said, and that they never differ."""
    from lib.contract.jvm_rule import JvmRule, compared
    from lib.kafka import read_range

    ends = end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    values = [r.value for r in read_range(cfg.kafka_bootstrap_servers, cfg.events_topic, {}, ends, timeout_s=600)]
    if len(values) != sum(ends.values()):
        raise RuntimeError(f"read {len(values):,} of the topic's {sum(ends.values()):,} records")
    began = time.monotonic()
    with JvmRule(cfg) as jvm:
        want, differ = compared(jvm, values)
    if differ:
        raise RuntimeError(f"the JVM rule and Python's differ on {len(differ):,} of {len(values):,} records; "
                           f"the first (record, Python, JVM): {differ[:3]}")
    reasons = Counter((reason or "event").split(":")[0] for reason, _ in want)
    return {"records": len(values), "disagreements": 0, "seconds": round(time.monotonic() - began, 1),
            "answers": dict(sorted(reasons.items()))}


def main() -> dict:
    from lib.traffic.produce import produce

    cfg = bench_settings()
    with services(cfg, [s.name for s in stack.services(cfg)]):  # what it started, it stops
        # The stack's memory with and without Flink's two JVMs (idle while Spark runs; the earlier 200k
        # figure counted Kafka, the catalog and the driver).
        pids = {arm: [pid for pid in (s.process(cfg).pid() for s in stack.select(names, cfg)) if pid]
                for arm, names in (("stack", None), ("spark's", ["kafka", "iceberg-rest"]))}
        ensure_topic(cfg.kafka_bootstrap_servers, cfg.events_topic, cfg.events_partitions)
        if not sum(end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic).values()):
            produce(cfg, REQUESTS, seed=1_000_001, progress=False, save=False)  # once: the topic is kept
        records = sum(end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic).values())
        rule = rule_agreement(cfg)
        inproc = layers(cfg, pids)
        jobs = cli(cfg)
        flink = stream(cfg, records)
    result = report(records, inproc, jobs, flink) | {"rule": rule}
    print(f"the JVM rule and Python's over all {rule['records']:,} records: {rule['disagreements']} "
          f"disagreements ({rule['seconds']} s); " + ", ".join(f"{k} {n:,}" for k, n in rule["answers"].items()))
    write_result("throughput", result)
    return result


def report(records: int, inproc: dict, jobs: dict[str, float], flink: dict[str, dict]) -> dict:
    """The issue's table: each figure, its goal, the ratio to the goal; printed and returned as JSON."""
    s = inproc["seconds"]
    total = round(sum(jobs.values()), 1)
    rows = [(f"{layer} run (one session)", s[layer], round(records / s[layer]), GOAL_RECORDS_PER_S[layer],
             records / s[layer] / GOAL_RECORDS_PER_S[layer], records / s[layer] >= GOAL_RECORDS_PER_S[layer])
            for layer in GOAL_RECORDS_PER_S]
    rows += [(f"python -m lib run {job}", sec, round(records / sec), "", "", "") for job, sec in jobs.items()]
    rows.append(("the three jobs together (s)", total, "", f"<= {goals.CLI_TOTAL.bound}",
                 goals.CLI_TOTAL.bound / total, goals.CLI_TOTAL.met(total)))
    append_ratio = s["bronze"] / s["append"]
    rows.append(("Bronze run / plain append (x)", round(append_ratio, 2), "", f"<= {goals.BRONZE_OVER_APPEND.bound}",
                 goals.BRONZE_OVER_APPEND.bound / append_ratio, goals.BRONZE_OVER_APPEND.met(append_ratio)))
    rate, black = flink["sinks"]["records_per_s"], flink["blackhole"]["records_per_s"]
    flink_goal = goals.FLINK_BACKLOG.bound
    rows.append(("Flink backlog drained", flink["sinks"]["consume_s"], rate, flink_goal, rate / flink_goal,
                 goals.FLINK_BACKLOG.met(rate)))
    rows.append(("  same job, sinks blackholed", flink["blackhole"]["consume_s"], black, "", "", ""))
    rows.append(("  sinks / blackhole (ratio)", round(rate / black, 2), "", f">= {GOAL_FLINK_RATIO}",
                 rate / black / GOAL_FLINK_RATIO, rate / black >= GOAL_FLINK_RATIO))
    two = flink.get("sinks, parallelism 2")
    if two:
        rows.append(("  the job at parallelism 2", two["consume_s"], two["records_per_s"], flink_goal,
                     two["records_per_s"] / flink_goal, goals.FLINK_BACKLOG.met(two["records_per_s"])))
    peak_gib = inproc["peak_rss_mib"] / 1024
    rows.append(("peak RSS, stack + driver (GiB)", round(peak_gib, 2), "", f"<= {goals.PEAK_RSS.bound}",
                 goals.PEAK_RSS.bound / peak_gib, goals.PEAK_RSS.met(peak_gib)))
    table = [(name, value, f"{rec:,}" if rec != "" else "", goal if isinstance(goal, str) else f">= {goal:,}",
              f"{ratio:.2f}" if ratio != "" else "", "" if met == "" else ("yes" if met else "NO"))
             for name, value, rec, goal, ratio, met in rows]
    print(tabulate(table, headers=["figure", "seconds / value", "records/s", "goal", "goal ratio (>= 1 met)",
                                   "met"]))
    without = inproc["peak_rss_mib_without_flink"]
    print(f"peak RSS without Flink's JVMs (Kafka, the catalog, the driver): {without:,} MiB; at the peak: "
          + ", ".join(f"{kind} {mib:,} MiB" for kind, mib in inproc["at_peak_mib"].items()))
    print(f"\n{records:,} records in the topic ({REQUESTS:,} requests); jobs include papermill, the kernel, "
          "Spark's start and their checks\n")
    goal_rows = [goals.FLINK_BACKLOG.row(rate, f"{rate:,} records/s (blackhole {black:,})"),
                 goals.BRONZE_OVER_APPEND.row(append_ratio, f"{append_ratio:.1f}x ({s['bronze']} s / {s['append']} s)"),
                 goals.CLI_TOTAL.row(total, f"{total} s (" + " + ".join(f"{v}" for v in jobs.values()) + ")"),
                 goals.PEAK_RSS.row(round(peak_gib, 2), f"{peak_gib:.1f} GiB")]
    goals.print_goals(goal_rows)
    return {"benchmark": "throughput", "when": datetime.now(UTC).isoformat(timespec="seconds"), "records": records,
            "layers": {"seconds": s, "records_per_s": {k: round(records / v) for k, v in s.items()},
                       "goal_records_per_s": GOAL_RECORDS_PER_S},
            "bronze_over_append": round(append_ratio, 2),
            "peak_rss_mib": inproc["peak_rss_mib"], "peak_rss_mib_without_flink": inproc["peak_rss_mib_without_flink"],
            "at_peak_mib": inproc["at_peak_mib"],
            "jobs": {"seconds": jobs, "total_s": total},
            "flink": flink | {"ratio": round(rate / black, 2), "goal_ratio": GOAL_FLINK_RATIO},
            "goals": goal_rows}
