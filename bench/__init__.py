"""Benchmarks: `make bench` runs them all; each writes JSON under bench/results/ and prints a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lib import stack
from lib.config import Settings


@contextmanager
def services(cfg: Settings, names: list[str]) -> Iterator[None]:
    """Start these stack services for a benchmark; stop, after, only those it started."""
    before = stack.running(cfg)
    stack.up(cfg, names, quiet=True)
    try:
        yield
    finally:
        started = stack.running(cfg) - before
        if started:
            stack.down(cfg, sorted(started))
