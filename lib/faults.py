"""Test hooks that crash a job at a named point, as a killed driver would.

Set WORKBOOK_CRASH_AT=<point> (or call `crash_at(point)` in-process) and the job raises
InjectedCrash when it reaches that point. The drills and tests use it to prove that a re-run
after a crash yields the same tables as a run without one. A no-op unless asked for.
(A killed *service* is `lib.stack.kill`.)
"""

from __future__ import annotations

import os

from lib.errors import InjectedCrash

_ARMED: set[str] = set()


def crash_at(point: str | None) -> None:
    """Arm (or with None, disarm all) crash points for this process."""
    if point is None:
        _ARMED.clear()
    else:
        _ARMED.add(point)


def checkpoint(point: str) -> None:
    """Crash here if this point is armed, by the environment or by `crash_at`."""
    if point in _ARMED or os.environ.get("WORKBOOK_CRASH_AT") == point:
        raise InjectedCrash(f"injected crash at {point!r}")

