"""Test hooks that crash a job at a named point, as a killed driver would.

Set WORKBOOK_CRASH_AT=<point> (or call `crash_at(point)` in-process) and the job raises
InjectedCrash when it reaches that point. The drills and tests use it to prove that a re-run
after a crash yields the same tables as a run without one. A no-op unless asked for.
"""

from __future__ import annotations

import os

_ARMED: set[str] = set()


class InjectedCrash(RuntimeError):
    """Raised at an armed crash point."""


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


def kill_service(name: str) -> int:
    """SIGKILL a stack service's whole process group, as a crashed machine would; returns the pid.

    No shutdown hook runs: a killed taskmanager leaves its Flink job to the jobmanager's restart
    strategy, which resumes from the latest checkpoint once a taskmanager is back.
    """
    import signal

    from lib import stack
    from lib.config import settings

    cfg = settings()
    pid = stack.select([name], cfg)[0].process(cfg).pid()
    if pid is None:
        raise RuntimeError(f"{name} is not running under this stack; start it with `python -m lib stack up`")
    os.killpg(pid, signal.SIGKILL)
    return pid
