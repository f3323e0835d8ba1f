from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from lib.config import ROOT
from lib.errors import ParameterError
from lib.jobs.runner import Interval, layer_parameters, parse_time


def test_naive_times_are_utc_and_offsets_are_converted() -> None:
    assert parse_time("2026-11-27", "--start") == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_time("2026-11-27T10:00:00+02:00", "--end") == datetime(2026, 11, 27, 8, tzinfo=UTC)


def test_unparsable_date_names_the_parameter() -> None:
    with pytest.raises(ParameterError, match=r"--start='2026-13-45' is not an ISO-8601"):
        parse_time("2026-13-45", "--start")


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ParameterError, match="is not before --end"):
        Interval.parse("2026-11-28", "2026-11-27")
    with pytest.raises(ParameterError, match="is not before --end"):
        Interval.parse("2026-11-27", "2026-11-27")


def test_unknown_layer_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="layer='platinum' is unknown; choose one of: bronze, silver, gold"):
        layer_parameters("platinum", None, None, False)


def test_backfill_needs_an_interval() -> None:
    with pytest.raises(ParameterError, match="--backfill needs both"):
        layer_parameters("bronze", "2026-11-01", None, True)
    with pytest.raises(ParameterError, match="give both --start and --end"):
        layer_parameters("silver", "2026-11-01", None, False)


def test_parameters_reach_the_notebook_as_utc_iso() -> None:
    params = layer_parameters("bronze", "2026-11-01", "2026-11-03T00:00:00+01:00", True)
    assert params == {
        "BACKFILL": True,
        "INTERVAL_START": "2026-11-01T00:00:00+00:00",
        "INTERVAL_END": "2026-11-02T23:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "platinum"], "layer='platinum' is unknown"),
        (["run", "bronze", "--start", "yesterday", "--end", "2026-11-27"], "--start='yesterday'"),
        (["run", "gold", "--start", "2026-11-27", "--end", "2026-11-01"], "is not before --end"),
        (["run", "silver", "--backfill", "--start", "2026-11-01", "--end", "2026-11-02"], "--backfill is Bronze's"),
    ],
)
def test_cli_rejects_bad_parameters_before_anything_starts(args: list[str], needle: str) -> None:
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 2
    assert needle in out.stderr
    # No Spark, no stack check: a usage error comes back at once.
    assert time.monotonic() - began < 15
    assert "SparkSession" not in out.stderr


def test_run_with_the_stack_down_says_how_to_start_it(tmp_path) -> None:
    import os
    import socket

    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    env = {
        **os.environ,
        "STACK_HOME": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports[0]}",
        "ICEBERG_REST_URI": f"http://127.0.0.1:{ports[1]}",
        "FLINK_REST_URL": f"http://127.0.0.1:{ports[2]}",
    }
    out = subprocess.run([sys.executable, "-m", "lib", "run", "bronze"], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=False, timeout=60)
    assert out.returncode == 1
    assert "The stack is not running" in out.stderr
    assert f"kafka (127.0.0.1:{ports[0]})" in out.stderr
    assert "make up" in out.stderr
