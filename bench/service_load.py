"""The service under load: FastAPI/uvicorn answering after Kafka's ack, against the stdlib baseline.

Both servers run on loopback, one after the other in the same run, against the same broker and a
topic of their own, and take the same load: bombardier (a maintained Go load generator, built
from the Go module proxy into build/bin) with 64 keep-alive connections for DURATION_S seconds on
`GET /to-roman/1994`. Per server: requests/s answered 200, requests/s whose event Kafka
acknowledged (the service's own /health counter), p50/p99 latency. The baseline answers before
the ack; the service answers after it. Goals on the 2-core machine (bench/goals.py): at least 6k
acknowledged requests/s and p99 under 50 ms at 64 clients.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime

from tabulate import tabulate

from bench import goals, services
from bench.scale import sized, write_result
from lib.config import ROOT, Settings, settings
from lib.errors import StackError
from lib.kafka import ensure_topic
from lib.stack.roman import serving
from lib.traffic.client import ServiceClient

BOMBARDIER = ROOT / "build" / "bin" / "bombardier"
CONNECTIONS = 64
DURATION_S = sized(20, 2)
WARMUP_S = sized(3, 1)
GOAL_RPS = goals.SERVICE_RATE.bound
GOAL_P99_MS = goals.SERVICE_P99.bound
SERVERS = {"baseline (stdlib, answers before the ack)": "bench.baseline_service",
           "service (FastAPI, answers after the ack)": "lib.service.server"}


def main() -> dict:
    if not BOMBARDIER.exists():
        raise StackError(f"{BOMBARDIER} is missing: `make bench` builds it (Go's module proxy, no download site)")
    cfg = settings()
    with services(cfg, ["kafka"]):
        return _measure(cfg)


def _measure(cfg: Settings) -> dict:
    topic = f"bench-service-{int(time.time())}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, cfg.events_partitions)
    rows = {}
    for label, module in SERVERS.items():
        with serving(cfg.kafka_bootstrap_servers, topic, cfg.service_ack_timeout_s, module) as server:
            url = server.url
            _load(url, WARMUP_S)  # connections, caches and the producer's metadata, not timed
            before = _acked(cfg, url)
            run = _load(url, DURATION_S)
            time.sleep(1)  # the baseline's last events are still on their way to the broker
            acked = _acked(cfg, url) - before
        seconds = run["timeTakenSeconds"]
        latency = run["latency"]["percentiles"]
        rows[label] = {
            "answered_200": run["req2xx"], "errors": run["req5xx"] + run["others"] + run["req4xx"],
            "seconds": round(seconds, 2), "requests_per_s": round(run["req2xx"] / seconds),
            "acked_per_s": round(acked / seconds), "p50_ms": latency["50"] / 1000, "p99_ms": latency["99"] / 1000,
            "max_ms": run["latency"]["max"] / 1000,
        }
    base, new = (rows[label] for label in SERVERS)
    goal_rows = [goals.SERVICE_RATE.row(new["acked_per_s"], f"{new['acked_per_s']:,}/s"),
                 goals.SERVICE_P99.row(new["p99_ms"], f"{new['p99_ms']:.1f} ms")]
    result = {
        "benchmark": "service",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"tool": "bombardier v1.2.6", "connections": CONNECTIONS, "seconds": DURATION_S,
                 "request": "GET /to-roman/1994"},
        "servers": rows,
        "goal": {"acked_per_s": GOAL_RPS, "p99_ms": GOAL_P99_MS},
        "ratio_service_to_baseline_requests_per_s": round(new["requests_per_s"] / base["requests_per_s"], 2),
        "ratio_service_to_baseline_p99": round(new["p99_ms"] / base["p99_ms"], 2),
        "ratio_service_acked_to_goal": round(new["acked_per_s"] / GOAL_RPS, 2),
        "ratio_service_p99_to_goal": round(new["p99_ms"] / GOAL_P99_MS, 2),
        "goals": goal_rows,
    }
    write_result("service", result)
    print(tabulate([(label, r["answered_200"], r["errors"], r["requests_per_s"], r["acked_per_s"], r["p50_ms"],
                     r["p99_ms"], r["max_ms"]) for label, r in rows.items()],
                   headers=["server", "200s", "errors", "requests/s", "acked/s", "p50 ms", "p99 ms", "max ms"]))
    print(f"\nservice / baseline: {result['ratio_service_to_baseline_requests_per_s']}x requests/s, "
          f"{result['ratio_service_to_baseline_p99']}x p99   service / goal: "
          f"{result['ratio_service_acked_to_goal']}x acked/s ({GOAL_RPS:,}), "
          f"{result['ratio_service_p99_to_goal']}x p99 ({GOAL_P99_MS:.0f} ms)\n")
    goals.print_goals(goal_rows)
    return result


def _load(url: str, seconds: int) -> dict:
    """One bombardier run: its JSON result (latencies in microseconds)."""
    proc = subprocess.run(
        [str(BOMBARDIER), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "30s", "-l", "-o", "json",
         "-p", "r", "-H", "X-User-Id: bench", f"{url}/to-roman/1994"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)["result"]


def _acked(cfg: Settings, url: str) -> int:
    with ServiceClient(replace(cfg, roman_service_url=url)) as client:
        return client.events_acked()
