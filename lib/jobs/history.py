"""The run history: every attempt of every scheduled job, kept in SQLite under runs/.

It survives restarts (the scheduler reads it to know what already succeeded, which is how a later
invocation catches up from a failed interval), and a notebook can query it with pandas:
`RunHistory(cfg).frame()`. SQLite, the scheduler's own small database, plays the part Airflow's
metadata database plays: it is the orchestrator's state, not a service of the platform.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from lib.config import Settings
from lib.jobs.registry import Interval

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    interval_start TEXT NOT NULL,
    interval_end TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,            -- running | succeeded | failed
    started_at TEXT NOT NULL,
    duration_s REAL,
    rows_merged INTEGER,
    notebook TEXT,
    error TEXT,
    runner TEXT                      -- scheduler | airflow <dag run id> | cli
)"""
COLUMNS = ("id", "job", "interval_start", "interval_end", "attempt", "status", "started_at", "duration_s",
           "rows_merged", "notebook", "error", "runner")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class RunHistory:
    """The runs table: one row per attempt."""

    def __init__(self, cfg: Settings) -> None:
        self.path: Path = cfg.runs_dir / "history.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(_SCHEMA)
            known = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            if "runner" not in known:  # a history written before runs said who ran them
                db.execute("ALTER TABLE runs ADD COLUMN runner TEXT")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def begin(self, job: str, interval: Interval, attempt: int, runner: str = "cli") -> int:
        """Record an attempt as running; returns its id. `runner`: who ran it (the embedded scheduler,
        an Airflow DAG run, a person at the command line)."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (job, interval_start, interval_end, attempt, status, started_at, runner) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (job, _iso(interval.start), _iso(interval.end), attempt, _iso(datetime.now(UTC)), runner))
            assert cursor.lastrowid is not None, "an INSERT without a row id"
            return cursor.lastrowid

    def end(self, run_id: int, ok: bool, duration_s: float, rows_merged: int | None, notebook: str | None,
            error: str = "") -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET status = ?, duration_s = ?, rows_merged = ?, notebook = ?, error = ? "
                       "WHERE id = ?",
                       ("succeeded" if ok else "failed", round(duration_s, 2), rows_merged, notebook, error or None,
                        run_id))

    def covered(self, job: str, interval: Interval) -> bool:
        """True when the job's succeeded runs, together, cover the whole interval (Bronze's one
        catch-up run covers every quarter hour it caught up on; a day is covered by 24 Silver hours).

        A run covers what had happened when it ran, not the future: its interval is clipped at the
        moment it started. A Silver run over [2000, 2100) made today covers nothing of tomorrow, so
        tomorrow's hours are still due and a DAG's sensor still waits for them."""
        with self._db() as db:
            rows = db.execute(
                "SELECT interval_start, interval_end, started_at FROM runs WHERE job = ? AND status = 'succeeded' "
                "AND interval_end > ? AND interval_start < ?",
                (job, _iso(interval.start), _iso(interval.end))).fetchall()
        spans = sorted((datetime.fromisoformat(start), min(datetime.fromisoformat(end), datetime.fromisoformat(began)))
                       for start, end, began in rows)
        reached = interval.start
        for start, end in spans:
            if start > reached:
                return False
            reached = max(reached, end)
            if reached >= interval.end:
                return True
        return reached >= interval.end

    def frame(self, job: str | None = None, last: int | None = None) -> pd.DataFrame:
        """The history as a table, oldest first (the last `last` rows; one job's when `job` is given)."""
        query, args = f"SELECT {', '.join(COLUMNS)} FROM runs", []
        if job:
            query, args = query + " WHERE job = ?", [job]
        query += " ORDER BY id DESC" + (f" LIMIT {int(last)}" if last else "")
        with self._db() as db:
            rows = db.execute(query, args).fetchall()
        return pd.DataFrame(reversed(rows), columns=list(COLUMNS))
