"""Test hooks that crash a job at a named point, as a killed driver would, or hold it there until
a second run arrives, as two runs started together would meet.

Set WORKBOOK_CRASH_AT=<point> (read into Settings and armed by `arm(cfg)`, which a job notebook's setup
cell calls; or call `crash_at(point)` in-process) and the job raises
InjectedCrash when it reaches that point. The drills and tests use it to prove that a re-run
after a crash yields the same tables as a run without one.

Set WORKBOOK_RENDEZVOUS=<point>@<directory>#<parties> (or call `rendezvous_at`) and each run (a
process, or a thread) waits at that point until `parties` runs have reached it: the race of two
runs over the same records, made certain instead of left to timing. Once per run. Both are
no-ops unless asked for. (A killed *service* is `lib.stack.kill`.)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lib.config import Settings
from lib.errors import InjectedCrash
from lib.plumbing.waits import poll

_ARMED: set[str] = set()
_MEETING: dict[str, tuple[Path, int]] = {}
_MET: set[str] = set()
#: How long a run waits for the others at a rendezvous before it gives up.
RENDEZVOUS_TIMEOUT_S = 180.0


def crash_at(point: str | None) -> None:
    """Arm (or with None, disarm all) crash points for this process."""
    if point is None:
        _ARMED.clear()
    else:
        _ARMED.add(point)


def rendezvous_at(point: str | None, directory: Path | None = None, parties: int = 2) -> None:
    """Arm (or with None, disarm all) a rendezvous of `parties` runs at `point`, met in `directory`."""
    if point is None:
        _MEETING.clear()
        _MET.clear()
    else:
        _MEETING[point] = (Path(directory or "."), parties)


def arm(cfg: Settings) -> None:
    """Arm what the settings ask for (WORKBOOK_CRASH_AT, WORKBOOK_RENDEZVOUS, read at the edge): a job's
    notebook does it in its setup cell, so a run started with them in its environment meets them."""
    if cfg.crash_at:
        crash_at(cfg.crash_at)
    if cfg.rendezvous:
        point, directory, parties = cfg.rendezvous
        rendezvous_at(point, Path(directory), parties)


def checkpoint(point: str) -> None:
    """Crash here if this point is armed; wait here for the others if a rendezvous is set for it."""
    if point in _ARMED:
        raise InjectedCrash(f"injected crash at {point!r}")
    meeting = _MEETING.get(point)
    me = f"{os.getpid()}-{threading.get_ident()}"
    if meeting is None or f"{me}@{point}" in _MET:
        return
    _MET.add(f"{me}@{point}")
    directory, parties = meeting
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{point}.{me}").touch()
    poll(lambda: len(list(directory.glob(f"{point}.*"))), timeout_s=RENDEZVOUS_TIMEOUT_S, every_s=0.05,
         until=lambda arrived: arrived >= parties,
         timed_out=lambda arrived: InjectedCrash(f"rendezvous at {point!r}: {arrived} of {parties} runs arrived within "
                                                 f"{RENDEZVOUS_TIMEOUT_S:.0f} s (see {directory})"))
