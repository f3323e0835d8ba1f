"""The job registry and the run CLI's refusals: every bad parameter is stopped before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lib.config import ROOT
from lib.errors import ParameterError
from lib.jobs.registry import JOBS, Interval, job, parameters, parse_time
from lib.stack.process import free_port

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_naive_times_are_utc_and_offsets_are_converted() -> None:
    assert parse_time("2026-11-27", "--start") == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_time("2026-11-27T10:00:00+02:00", "--end") == datetime(2026, 11, 27, 8, tzinfo=UTC)


def test_unparsable_date_names_the_parameter() -> None:
    with pytest.raises(ParameterError, match=r"--start='2026-13-45' is not an ISO-8601"):
        parse_time("2026-13-45", "--start")


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ParameterError, match="is not before --end"):
        Interval(T + timedelta(days=1), T)
    with pytest.raises(ParameterError, match="is not before --end"):
        parameters("silver", "2026-11-27", "2026-11-27")


def test_unknown_job_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="job='platinum' is unknown; choose one of: bronze, silver, gold"):
        job("platinum")


def test_a_parameter_the_job_does_not_take_is_refused_naming_what_it_takes() -> None:
    with pytest.raises(ParameterError, match=r"silver does not take --backfill; it accepts --start, --end"):
        parameters("silver", "2026-11-01", "2026-11-02", backfill=True)


def test_backfill_needs_an_interval_and_intervals_come_whole() -> None:
    with pytest.raises(ParameterError, match="--backfill needs both"):
        parameters("bronze", "2026-11-01", None, True)
    with pytest.raises(ParameterError, match="give both --start and --end"):
        parameters("silver", "2026-11-01", None)


def test_parameters_reach_the_notebook_as_utc_iso() -> None:
    assert parameters("bronze", "2026-11-01", "2026-11-03T00:00:00+01:00", True) == {
        "LESSON": False,
        "BACKFILL": True,
        "INTERVAL_START": "2026-11-01T00:00:00+00:00",
        "INTERVAL_END": "2026-11-02T23:00:00+00:00",
    }
    # Offsets, not an interval, say what Bronze reads; a job run never runs the lesson's demonstrations.
    assert parameters("bronze") == {"LESSON": False, "BACKFILL": False}
    assert set(parameters("gold")) == {"LESSON", "INTERVAL_START", "INTERVAL_END"}


def test_defaults_are_the_last_full_interval_of_each_cadence() -> None:
    now = datetime(2026, 1, 2, 13, 7, tzinfo=UTC)
    assert JOBS["bronze"].default_interval(now) == Interval(datetime(2026, 1, 2, 12, 45, tzinfo=UTC),
                                                            datetime(2026, 1, 2, 13, 0, tzinfo=UTC))
    assert JOBS["silver"].default_interval(now) == Interval(datetime(2026, 1, 2, 12, tzinfo=UTC),
                                                            datetime(2026, 1, 2, 13, tzinfo=UTC))
    assert JOBS["gold"].default_interval(now) == Interval(datetime(2026, 1, 1, tzinfo=UTC),
                                                          datetime(2026, 1, 2, tzinfo=UTC))


def test_intervals_are_the_full_ones_inside_the_range() -> None:
    hours = JOBS["silver"].intervals(T, T + timedelta(hours=3))
    assert [i.start.hour for i in hours] == [0, 1, 2]
    assert JOBS["gold"].intervals(T, T + timedelta(hours=3)) == []
    partial = JOBS["silver"].intervals(T + timedelta(minutes=10), T + timedelta(hours=2, minutes=5))
    assert [(i.start.hour, i.end.hour) for i in partial] == [(1, 2)]
    assert len(JOBS["bronze"].intervals(T, T + timedelta(hours=3))) == 12
    assert JOBS["silver"].depends_on == "bronze" and JOBS["gold"].depends_on == "silver"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "platinum"], "job='platinum' is unknown"),
        (["run", "bronze", "--start", "yesterday", "--end", "2026-11-27"], "--start='yesterday'"),
        (["run", "gold", "--start", "2026-11-27", "--end", "2026-11-01"], "is not before --end"),
        (["run", "silver", "--backfill", "--start", "2026-11-01", "--end", "2026-11-02"],
         "silver does not take --backfill; it accepts --start, --end"),
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


def test_run_with_the_stack_down_names_only_what_the_job_needs(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    env = {
        **os.environ,
        "STACK_HOME": str(tmp_path),
        "RUNS_DIR": str(tmp_path / "runs"),  # the failed attempt is recorded here, not in the checkout's history
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports[0]}",
        "ICEBERG_REST_URI": f"http://127.0.0.1:{ports[1]}",
        "FLINK_REST_URL": f"http://127.0.0.1:{ports[2]}",
        "ROMAN_SERVICE_URL": f"http://127.0.0.1:{ports[3]}",
    }
    out = subprocess.run([sys.executable, "-m", "lib", "run", "bronze"], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=False, timeout=60)
    assert out.returncode == 1
    assert "The stack is not running" in out.stderr
    assert f"kafka (127.0.0.1:{ports[0]})" in out.stderr and f"iceberg-rest (127.0.0.1:{ports[1]})" in out.stderr
    assert "flink" not in out.stderr and "roman-service" not in out.stderr  # a Spark batch job needs neither
    assert "make up" in out.stderr



def test_a_job_with_no_schedule_needs_its_interval_and_no_scheduler_runs_it() -> None:
    from lib.jobs.registry import scheduled_jobs

    with pytest.raises(ParameterError, match="migrate-silver has no schedule, so no default interval"):
        parameters("migrate-silver")
    params = parameters("migrate-silver", "2026-01-01", "2027-01-01")
    assert params == {"LESSON": False, "INTERVAL_START": "2026-01-01T00:00:00+00:00",
                      "INTERVAL_END": "2027-01-01T00:00:00+00:00"}
    with pytest.raises(ParameterError, match="does not take --backfill"):
        parameters("migrate-silver", "2026-01-01", "2027-01-01", backfill=True)
    assert [j.name for j in scheduled_jobs()] == ["bronze", "silver", "gold", "maintain"]
