"""The benchmarks start their servers with the service's own command line: a flag the service gains must not
break the frozen baseline (it once refused --schema-version, and `python -m bench service` failed unnoticed)."""

from __future__ import annotations

import pytest

from bench import baseline_service, service_load
from lib.stack.roman import command


def test_the_baseline_takes_the_command_line_the_benchmark_starts_every_server_with() -> None:
    assert "bench.baseline_service" in service_load.SERVERS.values()
    argv = command("127.0.0.1", 18000, "127.0.0.1:9092", "bench-topic", 5, "bench.baseline_service")
    assert argv[1:3] == ["-m", "bench.baseline_service"]
    args = baseline_service.parse(argv[3:])
    assert (args.host, args.port, args.topic, args.schema_version) == ("127.0.0.1", 18000, "bench-topic", 1)


def test_the_baseline_refuses_a_schema_it_does_not_write() -> None:
    with pytest.raises(SystemExit):
        baseline_service.parse(["--schema-version", "2"])
