"""Records per second into Kafka, acknowledged by the broker: direct producer vs the HTTP API.

Direct: the traffic generator's idempotent acks=all producer (librdkafka). Through the API: the same
requests sent to a Roman Numeral Service of the benchmark's own over 8 keep-alive connections, one
request at a time each; the service answers each once the broker acknowledged its event. Both write to
a topic of their own (the workbook's events topic is left alone). Goal: at least 20k records/s direct
on a 2-core machine.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace
from datetime import UTC, datetime

from tabulate import tabulate

from bench import services
from bench.scale import sized, write_result
from lib.config import Settings, settings
from lib.kafka import ensure_topic
from lib.stack.roman import serving
from lib.traffic.plan import plan
from lib.traffic.produce import produce

DIRECT_EVENTS = sized(100_000, 500)
SERVICE_EVENTS = sized(10_000, 100)
GOAL_DIRECT = 20_000


def main() -> dict:
    cfg = settings()
    with services(cfg, ["kafka"]):
        return _measure(cfg)


def _measure(cfg: Settings) -> dict:
    began = time.monotonic()
    plan(DIRECT_EVENTS, 101, datetime.now(UTC), cfg.events_partitions)
    plan_s = time.monotonic() - began
    own = replace(cfg, events_topic=f"bench-produce-{int(time.time())}")
    ensure_topic(own.kafka_bootstrap_servers, own.events_topic, own.events_partitions)
    direct = produce(own, DIRECT_EVENTS, seed=101, progress=False, save=False)
    with serving(own.kafka_bootstrap_servers, own.events_topic, own.service_ack_timeout_s) as server:
        via = produce(replace(own, roman_service_url=server.url), SERVICE_EVENTS, seed=102, progress=False,
                      save=False, via_service=True)
    direct_rate = direct.records / direct.seconds
    via_rate = via.records / via.seconds
    result = {
        "benchmark": "produce",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "direct": {"records": direct.records, "seconds": direct.seconds, "records_per_s": round(direct_rate)},
        "via_service": {"records": via.records, "seconds": via.seconds, "records_per_s": round(via_rate)},
        "planning_seconds_for_direct_batch": round(plan_s, 2),
        "goal_direct_records_per_s": GOAL_DIRECT,
        "ratio_direct_to_goal": round(direct_rate / GOAL_DIRECT, 2),
        "ratio_direct_to_service": round(direct_rate / via_rate, 1),
    }
    write_result("produce", result)
    print(tabulate([
        ("direct (librdkafka, acks=all)", direct.records, direct.seconds, round(direct_rate)),
        ("through the HTTP API", via.records, via.seconds, round(via_rate)),
    ], headers=["path", "records", "seconds", "records/s"]))
    print(f"\ndirect / goal ({GOAL_DIRECT:,}/s): {result['ratio_direct_to_goal']}x   "
          f"direct / HTTP API: {result['ratio_direct_to_service']}x   "
          f"(planning 100k records: {plan_s:.1f}s, not timed)")
    return result
