"""The scheduler without a stack: what falls due, catch-up, the lock, retries, alerts to a real HTTP receiver."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from lib.config import Settings, settings
from lib.errors import SchedulerBusy
from lib.jobs.alerts import alerts_log
from lib.jobs.history import RunHistory
from lib.jobs.registry import EPOCH, JOBS, Interval
from lib.jobs.scheduler import Retry, Scheduler, due
from lib.stack.process import free_port
from tests.unit import webhooks

T = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T + timedelta(days=30)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    """Settings whose services are all somewhere nothing listens, and whose runs/ is private."""
    return replace(settings(), runs_dir=tmp_path / "runs", stack_home=tmp_path / "stack",
                   kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                   iceberg_rest_uri=f"http://127.0.0.1:{free_port()}")


def _succeed(history: RunHistory, job: str, interval: Interval) -> None:
    history.end(history.begin(job, interval, 1), True, 1.0, 0, None)


def test_three_hours_are_one_bronze_catch_up_then_three_silver_hours_and_no_gold(cfg: Settings) -> None:
    planned = due(RunHistory(cfg), T, T + timedelta(hours=3), now=LATER)
    assert [(p.job.name, p.interval.start.hour, p.interval.end.hour) for p in planned] == [
        ("bronze", 0, 3), ("silver", 0, 1), ("silver", 1, 2), ("silver", 2, 3)]


def test_what_succeeded_is_not_due_again_and_a_gap_is(cfg: Settings) -> None:
    history = RunHistory(cfg)
    _succeed(history, "bronze", Interval(T, T + timedelta(hours=3)))
    _succeed(history, "silver", Interval(T, T + timedelta(hours=1)))
    _succeed(history, "silver", Interval(T + timedelta(hours=2), T + timedelta(hours=3)))
    planned = due(history, T, T + timedelta(hours=3), now=LATER)
    assert [(p.job.name, p.interval.start.hour) for p in planned] == [("silver", 1)]


def test_a_day_is_covered_by_its_hours_together(cfg: Settings) -> None:
    history = RunHistory(cfg)
    day = Interval(T, T + timedelta(days=1))
    for hour in JOBS["silver"].intervals(day.start, day.end)[:-1]:
        _succeed(history, "silver", hour)
    assert not history.covered("silver", day)
    _succeed(history, "silver", Interval(day.end - timedelta(hours=1), day.end))
    assert history.covered("silver", day)


def test_a_run_covers_what_had_happened_when_it_ran_not_the_future(cfg: Settings) -> None:
    """A wide re-run ([2000, 2100), as a "re-run everything" or a backfill whose end lies ahead makes)
    covers the past only: hours that end after it started are still due, and their sensors still wait."""
    history = RunHistory(cfg)
    began = datetime.now(UTC)
    _succeed(history, "bronze", Interval(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))
    _succeed(history, "silver", Interval(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))
    hour = began.replace(minute=0, second=0, microsecond=0)
    assert history.covered("silver", Interval(hour - timedelta(hours=2), hour - timedelta(hours=1)))
    assert not history.covered("silver", Interval(hour + timedelta(hours=1), hour + timedelta(hours=2)))
    assert not history.covered("silver", Interval(hour, hour + timedelta(hours=1)))  # it ran inside that hour
    later = hour + timedelta(hours=3, minutes=1)
    planned = due(history, hour - timedelta(hours=2), later, now=later)
    quarter = began.replace(minute=began.minute // 15 * 15, second=0, microsecond=0)
    assert [(p.job.name, p.interval.start) for p in planned] == [
        ("bronze", quarter), *[("silver", hour + timedelta(hours=h)) for h in range(3)]]


def test_an_interval_that_has_not_ended_is_not_due(cfg: Settings) -> None:
    now = T + timedelta(hours=1, minutes=20)
    planned = due(RunHistory(cfg), T, T + timedelta(hours=5), now=now)
    assert [(p.job.name, p.interval.end) for p in planned] == [
        ("bronze", T + timedelta(hours=1, minutes=15)), ("silver", T + timedelta(hours=1))]


def test_a_second_scheduler_is_refused_and_told_who_holds_the_lock(cfg: Settings) -> None:
    first, second = Scheduler(cfg), Scheduler(cfg)
    with first.lock(), pytest.raises(SchedulerBusy, match=r"another scheduler is running \(pid \d+ on "), \
            second.lock():
        pass
    with second.lock():  # released with the first
        pass


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()
    server.server_close()


def test_a_run_that_keeps_failing_is_retried_then_alerted_and_its_dependants_wait(
        cfg: Settings, receiver: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = replace(cfg, alert_webhook_url=receiver)
    scheduler = Scheduler(cfg, Retry(attempts=3, delay_s=0.01), say=lambda line: None)
    report = scheduler.run(T, T + timedelta(hours=2))
    assert [(p.job.name, n, o.ok) for p, n, o in report.attempts] == [("bronze", n, False) for n in (1, 2, 3)]
    assert "kafka" in report.attempts[0][2].error
    assert [p.job.name for p in report.waiting] == ["silver", "silver"]
    assert not report.ok
    # The alert, on all three channels.
    err = capsys.readouterr().err
    assert "ALERT: bronze [2026-01-01T00:00:00+00:00, 2026-01-01T02:00:00+00:00) failed after 3 attempts" in err
    lines = [json.loads(line) for line in alerts_log(cfg).read_text().splitlines()]
    logged = [line for line in lines if "delivery" not in line]
    assert len(logged) == 1 and logged[0]["job"] == "bronze" and logged[0]["attempts"] == 3
    assert _Receiver.received == logged
    assert [(line["delivery"], line["alert_at"]) for line in lines if "delivery" in line] == [
        ("delivered", logged[0]["at"])]
    # The history keeps every attempt; the next invocation starts again from the failed interval.
    history = RunHistory(cfg).frame()
    assert list(history.status) == ["failed"] * 3 and list(history.attempt) == [1, 2, 3]
    assert [p.job.name for p in due(RunHistory(cfg), T, T + timedelta(hours=2), now=LATER)] == [
        "bronze", "silver", "silver"]


def test_a_stalling_webhook_costs_the_watch_its_deadline_only_and_the_watch_goes_on(
        cfg: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`schedule --watch` alerts through a webhook that trickles its answer: each alert is logged undelivered
    within the webhook's deadline, the pass goes on to the next job, and the next pass runs and alerts again."""
    deadline_s = 1.0
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if sum("attempt 2/2: failed" in seen for seen in lines) == 2:
            scheduler._stopped.set()  # Ctrl-C's effect: stop between runs (after the second pass's alert)

    with webhooks.webhook(webhooks.trickling) as (url, _):
        scheduler = Scheduler(replace(cfg, alert_webhook_url=url, alert_webhook_timeout_s=deadline_s),
                              Retry(attempts=2, delay_s=0.01), say=say)
        started = time.monotonic()
        report = scheduler.watch(start, poll_s=0)
        elapsed = time.monotonic() - started
    assert [a["job"] for a in report.alerts] == ["bronze", "bronze"]
    # Each pass went on past its alert to the next job: Silver's hours were looked at and wait for Bronze.
    waited = [line for line in lines if line.startswith("silver ") and "waits for bronze" in line]
    assert len(waited) >= 2
    assert lines.index(waited[0]) > next(i for i, line in enumerate(lines) if "attempt 2/2: failed" in line)
    logged = [json.loads(line) for line in alerts_log(cfg).read_text().splitlines()]
    deliveries = [line for line in logged if "delivery" in line]
    assert [d["delivery"] for d in deliveries] == ["undelivered", "undelivered"]
    assert all(f"no complete answer within {deadline_s:g} s" in d["error"] for d in deliveries)
    assert all(d["seconds"] < deadline_s + 0.5 for d in deliveries)
    assert elapsed < 2 * (deadline_s + 0.5) + 10, f"two passes took {elapsed:.1f} s"
    assert capsys.readouterr().err.count("did not take the alert") == 2


def test_backoff_doubles() -> None:
    retry = Retry(attempts=3, delay_s=5)
    assert [retry.wait_before(n) for n in (2, 3)] == [5, 10]


def test_the_history_says_who_ran_each_attempt_and_an_older_history_gains_the_column(cfg: Settings) -> None:
    cfg.runs_dir.mkdir(parents=True)
    with sqlite3.connect(cfg.runs_dir / "history.db") as db:  # a history written before runs said who ran them
        db.execute(history_schema_before_runner())
        db.execute("INSERT INTO runs (job, interval_start, interval_end, attempt, status, started_at) "
                   "VALUES ('bronze', '2026-01-01T00:00:00+00:00', '2026-01-01T00:15:00+00:00', 1, 'succeeded', "
                   "'2026-01-01T00:16:00+00:00')")
    history = RunHistory(cfg)
    for runner in ("scheduler", "airflow manual__2026-01-01T00:00:00+00:00", "cli"):
        history.end(history.begin("silver", Interval(T, T + timedelta(hours=1)), 1, runner), True, 1.0, 0, None)
    frame = history.frame()
    assert list(frame.columns)[-1] == "runner"
    assert list(frame.runner) == [None, "scheduler", "airflow manual__2026-01-01T00:00:00+00:00", "cli"]
    assert history.covered("bronze", Interval(T, T + timedelta(minutes=15)))  # the old rows still count


def history_schema_before_runner() -> str:
    return """CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, interval_start TEXT NOT NULL,
        interval_end TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
        duration_s REAL, rows_merged INTEGER, notebook TEXT, error TEXT)"""


def test_an_unbounded_incremental_bronze_run_covers_everything_before_it_started(tmp_path: Path) -> None:
    """Airflow names a Bronze run's quarter hour, but the run reads every record produced before it
    started: its row claims everything up to that quarter's end, so the first such run after a gap (an
    outage, a new deployment) covers the whole Silver hour. A backfill or a bounded run claims its own."""
    from lib.jobs.runner import recorded_interval

    quarter = ("2026-01-01T03:45:00+00:00", "2026-01-01T04:00:00+00:00")
    claimed = recorded_interval(JOBS["bronze"], *quarter)
    assert (claimed.start, claimed.end) == (EPOCH, datetime(2026, 1, 1, 4, tzinfo=UTC))
    assert recorded_interval(JOBS["bronze"], *quarter, backfill=True).start == datetime(2026, 1, 1, 3, 45, tzinfo=UTC)
    assert recorded_interval(JOBS["bronze"], *quarter, max_records=10).start == datetime(2026, 1, 1, 3, 45, tzinfo=UTC)
    assert recorded_interval(JOBS["silver"], "2026-01-01T03:00", "2026-01-01T04:00").start.hour == 3
    history = RunHistory(replace(settings(), runs_dir=tmp_path))
    history.end(history.begin("bronze", claimed, 1), True, 1.0, 0, None)
    hour = Interval(datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 1, 1, 4, tzinfo=UTC))
    assert history.covered("bronze", hour)  # the hour before the quarter, which no run named, is covered
