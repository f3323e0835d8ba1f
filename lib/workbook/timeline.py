"""A drill's timeline: what broke when, what the job, the scheduler or Airflow did, and the recovery.

Each entry is stamped when it happens (wall clock, UTC), so entries read back from elsewhere (Airflow's
try start and end, an alert's "at", a Flink checkpoint's trigger time) sit among the drill's own in
time order. The notebook shows the offsets from the drill's start ("+12.3 s"), which read at a glance
and are the same shape on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd


@dataclass(frozen=True)
class Entry:
    at: datetime
    who: str
    what: str
    detail: str = ""


@dataclass
class Timeline:
    """The entries of one drill, from its start."""

    began: datetime = field(default_factory=lambda: datetime.now(UTC))
    entries: list[Entry] = field(default_factory=list)

    def mark(self, who: str, what: str, detail: str = "", at: datetime | None = None) -> datetime:
        """Record that `who` did or saw `what` (now, or at `at` when read back from a service); returns when."""
        when = at or datetime.now(UTC)
        self.entries.append(Entry(when, who, what, detail))
        return when

    def seconds(self, when: datetime) -> float:
        return (when - self.began).total_seconds()

    def frame(self) -> pd.DataFrame:
        """The entries in time order: offset from the start, who, what, detail (never cut: see `show`)."""
        ordered = sorted(self.entries, key=lambda e: e.at)
        return pd.DataFrame({"at": [f"+{self.seconds(e.at):.1f} s" for e in ordered],
                             "who": [e.who for e in ordered], "what": [e.what for e in ordered],
                             "detail": [e.detail for e in ordered]})


class Wrapped:
    """A table shown whole: in HTML long text wraps in its cell (left-aligned) instead of being cut with '...';
    as text (a log, nbval's comparison, a terminal) it is the frame's full `to_string()`."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_html_(self) -> str:
        # a fixed uuid: the HTML is the same on every run
        return (self.frame.style.set_uuid("drill").set_properties(**{"text-align": "left", "white-space": "pre-wrap"})
                .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}]).to_html())

    def __repr__(self) -> str:
        return self.frame.to_string()


def wrapped(frame: pd.DataFrame) -> Wrapped:
    return Wrapped(frame)
