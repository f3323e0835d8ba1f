"""The Flink stream: latency from event_time to the console and to Iceberg, and the rate it keeps up with.

1. Latency: on-time events produced at a steady 1k records/s for 30 s, then at 10k records/s for
   10 s (stamped with the wall clock as they are sent), each rate through a job of its own. To the
   console: the print sink's `printed_at` minus event_time, per event. To Iceberg: the commit time of
   the first snapshot holding the event minus event_time; bounded below by nothing and above by the
   checkpoint interval plus the commit. Goals: p99 to the console under 0.5 s at 1k records/s and
   under 1 s at 10k; p99 to Iceberg at 1k records/s within bench/goals.py's VISIBLE_P99. Each job
   gets two seconds of traffic first, not measured (a fresh job's first records are its slowest);
   the console figures are split into records printed during a checkpoint and between
   checkpoints, to see whether barriers stall them.
2. Sustained rate: a backlog of 100k generated records, consumed from the earliest offset; records
   per second until the committed offsets reach the end (a checkpoint included).

Each part uses its own topic, consumer group and job, on the running (or started) embedded stack.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tabulate import tabulate

from bench import goals, services
from bench.scale import sized, write_result
from lib import stack
from lib.config import Settings, settings
from lib.kafka import ensure_topic
from lib.medallion.catalog import catalog
from lib.stream import lifecycle
from lib.stream.job import CONSOLE_TAG, STREAM_EVENTS, StreamJob
from lib.stream.rest import FlinkRest
from lib.traffic.live import steady
from lib.traffic.produce import produce

#: records/s -> (seconds sent, the goal for p99 event_time -> console in seconds)
RATES = sized({1000: (30, 0.5), 10_000: (10, 1.0)}, {1000: (3, 0.5)})
RATE = 1000  # the rate the backlog's drain is compared with
WARM_UP_S = sized(2, 1)
BACKLOG = sized(100_000, 1_000)
CHECKPOINT = sized("5s", "1s")  # the smoke size waits for fewer seconds of checkpoints
SERVICES = ["kafka", "iceberg-rest", "flink-jobmanager", "flink-taskmanager"]


def main() -> dict:
    cfg = settings()
    with services(cfg, stack.with_storage(cfg, SERVICES)):
        return _measure(cfg)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_s": round(pick(0.50), 3), "p99_s": round(pick(0.99), 3),
            "max_s": round(ordered[-1], 3)}


def _job(cfg: Settings, label: str, stamp: str) -> StreamJob:
    topic = f"bench-{label}-{stamp}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, cfg.events_partitions)
    return StreamJob(name=f"bench-{topic}", topic=topic, group_id=topic, checkpoint_interval=CHECKPOINT)


def latency(cfg: Settings, stamp: str, rate: int) -> dict:
    seconds, goal = RATES[rate]
    flink = FlinkRest(cfg)
    job = _job(cfg, f"latency{rate}", stamp)
    job_id = lifecycle.start(cfg, job)
    flink.wait_for_checkpoint(job_id)
    # A freshly started job is slow for its first records (the first fetch, the Python worker's first
    # bundle, cold JIT): measured, the slowest 1% at 1k/s were all within the first 0.3 s of traffic.
    # Two seconds of warm-up traffic first, not measured: the figure is a running job's.
    steady(replace(cfg, events_topic=job.topic), WARM_UP_S, rate, seed=2, users=12, late_share=0,
           duplicate_share=0, jitter_s=0, user_prefix=f"warmup-{stamp}", progress=False)
    live = steady(replace(cfg, events_topic=job.topic), seconds, rate, seed=1, users=12, late_share=0,
                  duplicate_share=0, jitter_s=0, user_prefix=f"bench-{stamp}", progress=False)
    lifecycle.wait_caught_up(cfg, job_id, job, progress=False)
    # When each checkpoint ran (triggered -> last acknowledged), to see whether the slow records are
    # the ones that met a checkpoint barrier (the history keeps the newest few: web.checkpoints.history).
    barriers = [(c["trigger_timestamp"] / 1000, c["latest_ack_timestamp"] / 1000)
                for c in flink.checkpoints(job_id).get("history", []) if c.get("latest_ack_timestamp", -1) > 0]
    lifecycle.cancel(cfg, job_id)
    ids = set(live.event_ids)

    console, during, outside, printed_at = [], [], [], []
    covered_from = min((start for start, _ in barriers), default=float("inf"))
    for line in flink.console_lines(CONSOLE_TAG, last=None):
        fields = line.split("+I[", 1)[1].rstrip("]").split(", ")
        if fields[0] in ids:
            printed = datetime.fromisoformat(fields[-1])
            took = (printed - datetime.fromisoformat(fields[1])).total_seconds()
            console.append(took)
            at = printed.timestamp()
            printed_at.append(at)
            if at >= covered_from:  # within the span the checkpoint history covers
                (during if any(start <= at <= end for start, end in barriers) else outside).append(took)
    # The slowest 1%: how many were printed within a second after a checkpoint completed (when the
    # Iceberg committers commit, on the task thread), against the share of time such seconds cover.
    slow_from = sorted(console)[int(0.99 * len(console))] if console else 0.0
    slow = [at for at, took in zip(printed_at, console, strict=True) if took >= slow_from and at >= covered_from]
    after_commit = sum(any(end <= at <= end + 1 for _, end in barriers) for at in slow)

    table = catalog(cfg).load_table(STREAM_EVENTS)
    seen: set[str] = set()
    visible = []
    for snap in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        rows = table.scan(row_filter=f"kafka_topic == '{job.topic}'", snapshot_id=snap.snapshot_id,
                          selected_fields=("event_id", "event_time")).to_arrow().to_pylist()
        committed = datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)
        for row in rows:
            if row["event_id"] in ids and row["event_id"] not in seen:  # the measured traffic only
                seen.add(row["event_id"])
                visible.append((committed - row["event_time"]).total_seconds())
    return {"records": len(ids), "rate_per_s": rate, "seconds": seconds,
            "to_console": _percentiles(console), "to_iceberg": _percentiles(visible), "console_goal_p99_s": goal,
            "to_console_printed_during_a_checkpoint": _percentiles(during) if during else None,
            "to_console_printed_between_checkpoints": _percentiles(outside) if outside else None,
            "checkpoints_seen": len(barriers),
            "slowest_1pct_printed_within_1s_after_a_checkpoint": f"{after_commit} of {len(slow)}",
            "share_of_time_within_1s_after_a_checkpoint": round(len(barriers) / (seconds or 1), 2)}


def sustained(cfg: Settings, stamp: str) -> dict:
    job = _job(cfg, "rate", stamp)
    manifest = produce(replace(cfg, events_topic=job.topic), BACKLOG, seed=3,
                       start=datetime.now(UTC) - timedelta(hours=1), progress=False, save=False)
    began = time.monotonic()
    job_id = lifecycle.start(cfg, job)
    running = time.monotonic()
    lifecycle.wait_caught_up(cfg, job_id, job, progress=False)
    done = time.monotonic()
    lifecycle.cancel(cfg, job_id)
    return {"records": manifest.records, "submit_s": round(running - began, 2),
            "consume_s": round(done - running, 2), "records_per_s": round(manifest.records / (done - running))}


def _measure(cfg: Settings) -> dict:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    lat = {str(rate): latency(cfg, stamp, rate) for rate in RATES}
    rate = sustained(cfg, stamp)
    visible_p99 = lat[str(RATE)]["to_iceberg"]["p99_s"]
    goal_rows = [goals.VISIBLE_P99.row(visible_p99, f"{visible_p99} s (checkpoint every {CHECKPOINT})")]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "when": datetime.now(UTC).isoformat(),
              "checkpoint_interval": CHECKPOINT, "latency": lat, "sustained": rate, "goals": goal_rows}
    write_result("stream", result)
    rows = []
    for per_s, measured in lat.items():
        c, i, goal = measured["to_console"], measured["to_iceberg"], measured["console_goal_p99_s"]
        rows += [[f"{int(per_s):,}/s: event_time -> console", c["n"], c["p50_s"], c["p99_s"], f"< {goal}",
                  f"{c['p99_s'] / goal:.2f}"],
                 *([f"  printed {where}", part["n"], part["p50_s"], part["p99_s"], "", ""]
                   for where, part in (("during a checkpoint", measured["to_console_printed_during_a_checkpoint"]),
                                       ("between checkpoints", measured["to_console_printed_between_checkpoints"]))
                   if part),
                 [f"{int(per_s):,}/s: event_time -> Iceberg visible", i["n"], i["p50_s"], i["p99_s"],
                  f"checkpoint {CHECKPOINT}", ""]]
    print(tabulate(rows, headers=["stream latency", "events", "p50 s", "p99 s", "goal (p99)", "p99 / goal"]))
    for per_s, measured in lat.items():
        print(f"{int(per_s):,}/s: the slowest 1% printed within 1 s after a checkpoint completed: "
              f"{measured['slowest_1pct_printed_within_1s_after_a_checkpoint']} "
              f"(such seconds are {measured['share_of_time_within_1s_after_a_checkpoint']:.0%} of the run)")
    print(tabulate([["backlog drained", rate["records"], rate["consume_s"], rate["records_per_s"],
                     f"{rate['records_per_s'] / RATE:.1f}x the 1k/s stream"]],
                   headers=["", "records", "seconds", "records/s", "ratio"]))
    print()
    goals.print_goals(goal_rows)
    return result
