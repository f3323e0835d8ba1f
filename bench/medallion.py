"""Medallion benchmarks, on a private stack (own ports and STACK_HOME) so the workbook's tables are untouched.

1. End to end: 200k requests produced, then Bronze, Silver and Gold; records/s per layer and the
   peak resident memory of the whole stack (broker, catalog, this driver's JVM and Python).
2. Scaling: one run of each layer over 10k new requests when the tables already hold 100k rows,
   1M and 10M (seeded with Spark's own bulk write: it is the table's size that matters). The ratios
   t(1M) / t(100k) and t(10M) / t(100k) are the figures; goal <= 1.3 (a run's cost should follow its
   batch, not the table's history).
3. MERGE overhead: a Bronze run against a plain append of the same deduplicated batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psutil
from tabulate import tabulate

from bench import services
from bench.scale import sized, write_result
from lib import stack
from lib.config import ROOT, Settings, settings
from lib.kafka import ensure_topic
from lib.medallion.tables import BRONZE_EVENTS, DDL, GOLD_DAILY, SILVER_EVENTS, create_tables, naive_utc
from lib.traffic.produce import produce

#: The benchmark's own stack, beside the workbook's: other ports, other home, other warehouse.
PRIVATE_HOME = ROOT / "build" / "bench-stack"


def private_settings() -> Settings:
    """The workbook's settings moved to the private stack (every service started gets these).

    The benchmarks' own Spark sessions live long and carry large batches: they get both JIT tiers
    (at 1M records a cold Bronze run took 37.6-38.7 s with them, 41.5-42.8 s with C1 alone). The jobs
    they start as processes (`python -m lib run`) keep the environment's default, as an operator's do."""
    return replace(settings(), stack_home=PRIVATE_HOME, warehouse="file",  # measured on local files, as always
                   iceberg_warehouse=(PRIVATE_HOME / "warehouse").as_uri(),
                   kafka_bootstrap_servers="127.0.0.1:19092", iceberg_rest_uri="http://127.0.0.1:18181",
                   roman_service_url="http://127.0.0.1:18000", spark_jit="full")


END_TO_END = sized(200_000, 500)
BATCH = sized(10_000, 200)
SIZES = sized((100_000, 1_000_000, 10_000_000), (1_000, 2_000))
#: The run before each measured one (JIT, caches, the day's first files); a smoke run times nothing, so skips it.
WARM_UP = sized(1000, 0)
GOAL_RATIO = 1.3


class PeakMemory:
    """Samples the summed RSS of the stack's processes and this process tree every 0.5 s; `at_peak` is
    what each kind of process held at the peak (where the memory goes)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak, self._stop = pids, 0, threading.Event()
        self.at_peak: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            procs = [me, *me.children(recursive=True)]
            for pid in self.pids:
                with contextlib.suppress(psutil.NoSuchProcess):
                    procs.append(psutil.Process(pid))
            total, kinds = 0, {}
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss, kind = proc.memory_info().rss, _kind(proc)
                    total += rss
                    kinds[kind] = kinds.get(kind, 0) + rss
            if total > self.peak:
                self.peak, self.at_peak = total, kinds
            time.sleep(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _kind(proc: psutil.Process) -> str:
    """What a process is, for the memory breakdown: the service a JVM runs, or Python."""
    line = " ".join(proc.cmdline())
    for marker, kind in (("kafka.Kafka", "kafka"), ("CatalogServer", "iceberg catalog"),
                         ("TaskManagerRunner", "flink taskmanager"), ("ClusterEntrypoint", "flink jobmanager"),
                         ("pyspark", "spark driver JVM")):
        if marker in line and "java" in line:
            return kind
    return "python (driver, Spark's workers)" if "python" in line else proc.name()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    began = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - began, result


def reset_tables(spark) -> None:
    for table in DDL:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")
    create_tables(spark)


def seed_history(spark, rows: int, chunk: int = 1_000_000) -> None:
    """`rows` old events straight into Bronze, Silver and Gold, spread over 200 days of event_date.

    Written a million rows at a time, each chunk on its own run of days: one append of 10M rows over
    200 partitions holds a writer open per partition and task, more than a 2 GiB driver has."""
    # Spark imports stay in the functions: `python -m bench produce` or `stream` never loads pyspark.
    from pyspark.sql import functions as F

    from lib.medallion.gold import aggregate

    old = datetime(2025, 1, 1)
    for first in range(0, rows, chunk):
        base = spark.range(first, min(rows, first + chunk)).select(
            "id", F.expr("uuid()").alias("event_id"),
            (F.lit(old) + F.expr(f"make_interval(0, 0, 0, cast(id * 200 DIV {rows} AS INT), 0, 0, "
                                 "cast(id % 86400 AS INT))")).alias("event_time"),
            F.concat(F.lit("user-"), F.lpad((F.col("id") % 40 + 1).cast("string"), 4, "0")).alias("user_id"),
        ).withColumn("event_date", F.to_date("event_time")).withColumn("ingested_at", F.lit(old))
        bronze = base.select(
            "event_id", "event_time", "event_date", "user_id",
            F.to_json(F.struct("event_id", "user_id")).alias("payload"), F.lit("history").alias("kafka_topic"),
            F.lit(0).alias("kafka_partition"), F.col("id").alias("kafka_offset"),
            F.col("event_time").alias("kafka_timestamp"), "ingested_at")
        bronze.select(*spark.table(BRONZE_EVENTS).columns).writeTo(BRONZE_EVENTS).append()
        silver = base.select(
            "event_id", "event_time", "event_date", "user_id", F.lit("to_roman").alias("operation"),
            F.lit("1994").alias("input"), F.lit("MCMXCIV").alias("output"), F.lit(True).alias("success"),
            F.lit(None).cast("string").alias("error"), F.lit(1.0).alias("latency_ms"),
            F.lit(1).alias("schema_version"), "ingested_at", F.col("ingested_at").alias("processed_at"))
        silver.select(*spark.table(SILVER_EVENTS).columns).writeTo(SILVER_EVENTS).append()
    spark.table(SILVER_EVENTS).createOrReplaceTempView("bench_history")
    aggregate(spark, "bench_history", generated_at=old).select(*spark.table(GOLD_DAILY).columns) \
        .writeTo(GOLD_DAILY).append()


def layer_times(spark, cfg: Settings, events: int, seed: int) -> dict[str, float]:
    """Produce a batch, then time one run of each layer over exactly that batch."""
    # Spark imports stay in the functions: `python -m bench produce` or `stream` never loads pyspark.
    from lib.medallion.bronze import run_bronze
    from lib.medallion.gold import run_gold
    from lib.medallion.silver import run_silver

    produce(cfg, events, seed=seed, progress=False, save=False)
    t0 = datetime.now(UTC)
    tb, bronze = timed(run_bronze, spark, cfg)
    t1 = datetime.now(UTC)
    ts, silver = timed(run_silver, spark, t0, t1)
    tg, gold = timed(run_gold, spark, t1, datetime.now(UTC) + timedelta(seconds=1))
    landed = {"bronze": bronze.events_inserted, "silver": silver.inserted, "gold": gold.touched_keys}
    if not all(landed.values()):  # a run with nothing to do would time nothing
        raise RuntimeError(f"a layer landed nothing of the {events} requests produced: {landed}")
    return {"bronze": tb, "silver": ts, "gold": tg}


def merge_overhead(spark, cfg: Settings, seed: int) -> dict[str, float]:
    """Bronze's MERGE against a plain append of the same deduplicated batch."""
    # Spark imports stay in the functions: `python -m bench produce` or `stream` never loads pyspark.
    from lib.medallion.bronze import classify, first_delivery, offset_ranges, read_kafka, run_bronze, split

    produce(cfg, BATCH, seed=seed, progress=False, save=False)
    ranges = offset_ranges(spark, cfg, backfill=False)
    spark.sql("CREATE NAMESPACE IF NOT EXISTS bench")
    spark.sql("DROP TABLE IF EXISTS bench.append_only PURGE")
    spark.sql(f"CREATE TABLE bench.append_only USING iceberg PARTITIONED BY (event_date) "
              f"AS SELECT * FROM {BRONZE_EVENTS} LIMIT 0")

    def append() -> None:
        read_kafka(spark, cfg, ranges)
        classify(spark, "bronze_kafka", naive_utc()).createOrReplaceTempView("bench_records")
        events, _ = split(spark, "bench_records")
        events.createOrReplaceTempView("bench_events")
        batch = first_delivery(spark, "bench_events")
        batch.select(*spark.table("bench.append_only").columns).writeTo("bench.append_only").append()

    t_append, _ = timed(append)
    t_merge, _ = timed(run_bronze, spark, cfg)
    return {"append_s": t_append, "merge_s": t_merge, "ratio": t_merge / t_append}


def main() -> dict:
    # Spark imports stay in the functions: `python -m bench produce` or `stream` never loads pyspark.
    from lib.medallion.spark import spark_session

    # A topic of its own per invocation: the private broker keeps other benchmarks' topics (the
    # throughput benchmark's million), which a Bronze run on fresh tables would read again.
    cfg = replace(private_settings(), events_topic=f"bench-medallion-{int(time.time())}")
    # Started here unless running already (a smoke run starts the private stack once for every benchmark).
    with services(cfg, ["kafka", "roman-service", "iceberg-rest"]):
        ensure_topic(cfg.kafka_bootstrap_servers, cfg.events_topic, cfg.events_partitions)
        pids = [pid for pid in (s.process(cfg).pid() for s in stack.select(["kafka", "iceberg-rest"], cfg)) if pid]
        spark = spark_session(cfg, "bench-medallion")
        reset_tables(spark)
        with PeakMemory(pids) as memory:
            e2e = layer_times(spark, cfg, END_TO_END, seed=2001)
        records = round(END_TO_END * 1.07)
        scaling = {}
        for size in SIZES:
            reset_tables(spark)
            seed_history(spark, size)
            if WARM_UP:
                layer_times(spark, cfg, WARM_UP, seed=size + 1)  # warm-up: JIT, caches, first files of today
            scaling[size] = layer_times(spark, cfg, BATCH, seed=size + 2)
        overhead = merge_overhead(spark, cfg, seed=9001)
    small = scaling[SIZES[0]]
    ratios = {size: {layer: scaling[size][layer] / small[layer] for layer in small} for size in SIZES[1:]}
    result = {
        "benchmark": "medallion",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "end_to_end": {"requests": END_TO_END, "records": records,
                       "seconds": {k: round(v, 2) for k, v in e2e.items()},
                       "records_per_s": {k: round(records / v) for k, v in e2e.items()},
                       "peak_stack_rss_mib": round(memory.peak / 2**20)},
        "scaling": {str(size): {k: round(v, 2) for k, v in t.items()} for size, t in scaling.items()},
        "scaling_ratio_over_100k": {str(size): {k: round(v, 2) for k, v in r.items()} for size, r in ratios.items()},
        "goal_ratio": GOAL_RATIO,
        "merge_overhead": {k: round(v, 2) for k, v in overhead.items()},
    }
    write_result("medallion", result)
    big = SIZES[1:]
    print(tabulate([(layer, f"{e2e[layer]:.1f}", f"{records / e2e[layer]:,.0f}",
                     *(f"{scaling[size][layer]:.1f}" for size in SIZES),
                     *(f"{ratios[size][layer]:.2f}" for size in big),
                     "yes" if all(ratios[size][layer] <= GOAL_RATIO for size in big) else "NO")
                    for layer in ("bronze", "silver", "gold")],
                   headers=["layer", "200k e2e s", "records/s", *(f"10k @{size:,} s" for size in SIZES),
                            *(f"ratio {size:,}/{SIZES[0]:,}" for size in big), f"<= {GOAL_RATIO}"]))
    print(f"\npeak memory of the stack during the 200k run: {result['end_to_end']['peak_stack_rss_mib']} MiB")
    print(f"MERGE vs plain append of the same 10k batch: {overhead['merge_s']:.1f}s vs {overhead['append_s']:.1f}s "
          f"= {overhead['ratio']:.2f}x")
    return result
