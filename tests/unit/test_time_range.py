"""Times outside what the scheduler can step through are bad parameters (exit 2), not tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lib.config import ROOT
from lib.errors import ParameterError
from lib.jobs.registry import EARLIEST, LATEST, parameters, parse_time

RANGE = r"outside the supported range: give a time from 0001-01-02T00:00:00\+00:00 to 9999-12-30T00:00:00\+00:00"


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00", "9999-12-31", "0001-01-01", "9999-12-30T00:00:01"],
    ids=["year-10000-in-utc", "year-0-in-utc", "last-day", "first-day", "just-past-the-end"],
)
def test_a_time_out_of_range_is_a_parameter_error_naming_value_and_range(value: str) -> None:
    with pytest.raises(ParameterError, match=RANGE) as err:
        parse_time(value, "--start")
    assert f"--start={value!r}" in str(err.value)


def test_the_ends_of_the_range_are_accepted_and_a_day_either_side_still_fits() -> None:
    assert parse_time("0001-01-02", "--start") == EARLIEST
    assert parse_time("9999-12-30T01:00:00+01:00", "--end") == LATEST
    assert parameters("gold", "9999-12-29", "9999-12-30")["INTERVAL_END"] == "9999-12-30T00:00:00+00:00"
    assert parse_time("2026-11-27T10:00:00+02:00", "--end") == datetime(2026, 11, 27, 8, tzinfo=UTC)


def test_the_cli_exits_2_with_the_message_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "lib", "run", "silver", "--start", "9999-12-31T23:59:59-01:00",
                           "--end", "9999-12-31T23:59:59-01:00"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RUNS_DIR": str(tmp_path / "runs")})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "outside the supported range" in done.stderr and "Traceback" not in done.stderr
