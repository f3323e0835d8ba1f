"""How big a benchmark runs, and where its JSON goes.

`BENCH_SIZE=full` (the default) is the size the figures in docs/benchmarks.md were measured at;
`BENCH_SIZE=smoke` is a tiny one that proves a benchmark still works end to end: it starts what
it needs, drives the same code and writes its JSON (its figures then mean nothing, and the JSON
says which size made it). `BENCH_RESULTS` moves the JSON out of bench/results/, so a
smoke run never overwrites a measured one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from lib.errors import ConfigError

T = TypeVar("T")

SIZES = ("full", "smoke")
SIZE = (os.environ.get("BENCH_SIZE") or "full").strip().lower()
if SIZE not in SIZES:
    raise ConfigError(f"BENCH_SIZE={SIZE!r}: use full (the default, the measured size) or smoke (a tiny run that "
                      "only proves a benchmark still works)")
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).parent / "results")


def sized(full: T, smoke: T) -> T:
    """The full size, or the smoke one under BENCH_SIZE=smoke."""
    return smoke if SIZE == "smoke" else full


def write_result(name: str, result: dict[str, Any]) -> Path:
    """RESULTS/<name>.json, with the size that made it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**result, "size": SIZE}, indent=1) + "\n")
    return path
