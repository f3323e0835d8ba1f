"""Benchmarks: `make bench` runs them all; each writes JSON under bench/results/ and prints a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def services(names: list[str]) -> Iterator[None]:
    """Start these stack services for a benchmark; stop, after, only those it started."""
    from lib import stack

    before = stack.running()
    stack.up(names, quiet=True)
    try:
        yield
    finally:
        started = stack.running() - before
        if started:
            stack.down(sorted(started))
