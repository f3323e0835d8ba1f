"""The benchmarks start their servers with the service's own command line: a flag the service gains must not
break the frozen baseline (it once refused --schema-version, and `python -m bench service` failed unnoticed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench import baseline_service, service_load
from lib.config import ROOT
from lib.stack.roman import command


def test_the_baseline_takes_the_command_line_the_benchmark_starts_every_server_with() -> None:
    assert "bench.baseline_service" in service_load.SERVERS.values()
    argv = command("127.0.0.1", 18000, "127.0.0.1:9092", "bench-topic", 5, "bench.baseline_service")
    assert argv[1:3] == ["-m", "bench.baseline_service"]
    args = baseline_service.parse(argv[3:])
    assert (args.host, args.port, args.topic, args.schema_version) == ("127.0.0.1", 18000, "bench-topic", 1)


def test_the_baseline_listens_with_the_services_accept_backlog() -> None:
    """With socketserver's 5, 64 clients connecting at once waited on SYN-ACK retries (up to 31 s) and the
    baseline's rate was that wait's; both servers take the same load only with the same backlog."""
    from lib.service.server import build_server

    service = build_server("127.0.0.1", 0, "127.0.0.1:9092", "bench-topic", 5).config.backlog
    server = baseline_service.make_server("127.0.0.1", 0, None)
    try:
        assert server.request_queue_size == service == 2048
    finally:
        server.server_close()


def test_the_baseline_refuses_a_schema_it_does_not_write() -> None:
    with pytest.raises(SystemExit):
        baseline_service.parse(["--schema-version", "2"])


def test_an_unknown_bench_size_is_named_with_the_two_that_exist() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "produce"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "BENCH_SIZE": "huge"}, timeout=60)
    assert done.returncode == 2
    assert "BENCH_SIZE='huge'" in done.stderr and "smoke" in done.stderr and "Traceback" not in done.stderr


def test_the_smoke_size_is_smaller_than_the_measured_one_everywhere() -> None:
    code = ("import json, bench.produce_rate as p, bench.medallion as m, bench.stream_latency as s, "
            "bench.bounded_backlog as b, bench.service_load as l, bench.throughput as t, bench.scale as c; "
            "print(json.dumps([c.SIZE, str(c.RESULTS), p.DIRECT_EVENTS, m.END_TO_END, max(m.SIZES), s.BACKLOG, "
            "b.REQUESTS, l.DURATION_S, t.REQUESTS]))")
    sizes = {}
    for size in ("full", "smoke"):
        env = {**os.environ, "BENCH_SIZE": size, "BENCH_RESULTS": f"/tmp/bench-{size}"}
        env.pop("BENCH_REQUESTS", None)
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env,
                             timeout=60, check=True).stdout
        sizes[size] = json.loads(out)
    assert sizes["full"][:2] == ["full", "/tmp/bench-full"] and sizes["smoke"][:2] == ["smoke", "/tmp/bench-smoke"]
    assert all(small < big for small, big in zip(sizes["smoke"][2:], sizes["full"][2:], strict=True)), sizes
