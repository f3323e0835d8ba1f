"""Every benchmark, at its smoke size, runs end to end and writes its JSON: a benchmark cannot rot unnoticed.

Its figures are not checked (timing goals live in `make bench`, never in tests); that each one ran, on the
real stack, and recorded what it measured, is. The JSON goes to a temporary folder, never over the measured
results in bench/results/. The workbook's stack is the session's; the benchmarks' private one is started
here once for the three that use it, and stopped after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import services
from bench.__main__ import BENCHMARKS
from bench.throughput import bench_settings
from lib import stack
from lib.config import ROOT, Settings

pytestmark = pytest.mark.integration

#: The file each benchmark writes.
WRITES = {"produce": "produce", "medallion": "medallion", "stream": "stream", "backlog": "bounded_backlog",
          "service": "service", "throughput": "throughput"}


def test_every_benchmark_runs_at_its_smoke_size_and_writes_its_json(live_stack: Settings, tmp_path: Path) -> None:
    assert sorted(WRITES) == sorted(BENCHMARKS), "a benchmark was added: name the JSON it writes here"
    env = {**os.environ, "BENCH_SIZE": "smoke", "BENCH_RESULTS": str(tmp_path)}
    env.pop("BENCH_REQUESTS", None)
    private = bench_settings()
    with services(private, [s.name for s in stack.services(private)]):
        done = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(done.stdout[done.stdout.rfind("seconds per benchmark"):])  # each benchmark's seconds (pytest -rP shows them)
    for name, file in WRITES.items():
        path = tmp_path / f"{file}.json"
        assert path.is_file(), f"`python -m bench {name}` wrote no {path.name}:\n{done.stdout[-2000:]}"
        result = json.loads(path.read_text())
        assert result["size"] == "smoke", result
        assert len(result) > 2, f"{path.name} holds no figures: {result}"
        if name == "throughput":  # the JVM rule held to Python's over every record of its topic
            assert result["rule"]["records"] == result["records"] and result["rule"]["disagreements"] == 0
        if name in ("throughput", "stream", "service"):  # the goals' table, each row judged
            rows = result["goals"]
            assert rows and all(isinstance(row["met"], bool) and row["now"] for row in rows), rows
