"""The scheduler: every job that falls due in a range, in dependency order, with catch-up, retries and alerts.

`python -m lib schedule --from ISO --to ISO [--watch]`:

- what is due: every full interval of each job's cadence inside [from, to) (never one that has not
  ended yet) that no succeeded run in the history covers;
- catch-up: Bronze, driven by offsets, runs once for all its missed quarter hours; Silver and Gold,
  driven by intervals, run each missed interval in order;
- dependency order: an hour's Silver only once Bronze covers that hour, a day's Gold only once
  Silver covers every hour of it; a job whose dependency failed waits for the next invocation,
  which starts again from the failed interval;
- retries: each run gets `attempts` tries (3 by default: two retries) with exponential backoff;
  when the last one fails the scheduler alerts (lib.jobs.alerts) and the run's dependants do not run;
- freshness: after every pass, each layer's newest data against its cadence (lib.jobs.freshness); a
  layer staler than twice its cadence is alerted once, and said again when it recovers;
- one scheduler at a time: a lock file under runs/ says who holds it; a second scheduler refuses
  to start and names the holder, so no job interval ever runs twice at once from here.

Each attempt keeps its executed notebook at runs/<job>/<interval start>/attempt-<n>.ipynb and a row
in the run history (lib.jobs.history).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from tenacity import Retrying, retry_if_result, stop_after_attempt

from lib.config import Settings
from lib.errors import ParameterError, SchedulerBusy
from lib.jobs import freshness
from lib.jobs.alerts import alert
from lib.jobs.history import RunHistory
from lib.jobs.registry import Interval, Job, parameters, scheduled_jobs
from lib.jobs.runner import Outcome, run_attempt
from lib.plumbing.waits import last_answer


@dataclass(frozen=True)
class Retry:
    """How often a failed run is tried again, and how long to wait before each new try."""

    attempts: int = 3
    delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.delay_s < 0:
            raise ParameterError(f"--attempts {self.attempts} / --retry-delay {self.delay_s}: give at least one "
                                 "attempt and a delay of 0 s or more")

    def wait_before(self, attempt: int) -> float:
        """Backoff before attempt n (n >= 2): delay, 2 x delay, 4 x delay..."""
        return self.delay_s * 2 ** (attempt - 2)


@dataclass(frozen=True)
class Planned:
    job: Job
    interval: Interval


@dataclass
class Report:
    """What one invocation did: every attempt's outcome, the alerts, the runs that waited."""

    attempts: list[tuple[Planned, int, Outcome]] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    waiting: list[Planned] = field(default_factory=list)
    #: What the freshness check after the pass sent: stale layers' alerts, recovered layers' lines.
    freshness: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.alerts and not self.waiting


def due(history: RunHistory, start: datetime, end: datetime, now: datetime | None = None) -> list[Planned]:
    """The runs due in [start, end), in dependency order, skipping what the history already covers."""
    end = min(end, now or datetime.now(UTC))
    runs: list[Planned] = []
    for spec in scheduled_jobs():  # the registry lists jobs in dependency order
        missing = [i for i in spec.intervals(start, end) if not history.covered(spec.name, i)]
        if not missing:
            continue
        if spec.catch_up_in_one_run:
            runs.append(Planned(spec, Interval(missing[0].start, missing[-1].end)))
        else:
            runs.extend(Planned(spec, i) for i in missing)
    return runs


class Scheduler:
    """Runs what is due, with retries and alerts, under the lock."""

    def __init__(self, cfg: Settings, retry: Retry | None = None, progress: bool = False,
                 say: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.retry = retry or Retry()
        self.history = RunHistory(cfg)
        self.progress = progress
        self.say = say
        self._stopped = threading.Event()

    def run(self, start: datetime, end: datetime) -> Report:
        """One pass over [start, end)."""
        report = Report()
        with self.lock():
            for planned in due(self.history, start, end):
                if self._stopped.is_set():
                    break
                dependency = planned.job.depends_on
                if dependency and not self.history.covered(dependency, planned.interval):
                    self.say(f"{planned.job.name} {planned.interval.label}: waits for {dependency} to cover "
                             f"[{planned.interval.start.isoformat()}, {planned.interval.end.isoformat()})")
                    report.waiting.append(planned)
                    continue
                self._run_with_retries(planned, report)
            report.freshness = self._check_freshness()
        return report

    def _check_freshness(self) -> list[dict]:
        """After a pass: alert each layer that turned stale, say each that recovered (lib.jobs.freshness).
        A freshness check that cannot read the tables is said, never fatal to the pass."""
        try:
            return freshness.check(self.cfg)
        except Exception as exc:  # a monitor that fails must not stop the scheduler
            self.say(f"freshness not checked: {exc}")
            return []

    def watch(self, start: datetime, poll_s: float = 60.0) -> Report:
        """Keep going on the real clock: a pass over [start, now) on every poll until Ctrl-C, which
        stops between runs, never inside one (each kernel runs in its own session)."""
        report = Report()
        previous = signal.signal(signal.SIGINT, self._stop_soon)
        try:
            while not self._stopped.is_set():
                once = self.run(start, datetime.now(UTC))
                report.attempts += once.attempts
                report.alerts += once.alerts
                report.waiting = once.waiting
                self._stopped.wait(poll_s)  # woken at once by Ctrl-C
        finally:
            signal.signal(signal.SIGINT, previous)
        return report

    def _stop_soon(self, signum: int, frame: FrameType | None) -> None:
        self.say("stopping after the current run (Ctrl-C again does nothing until then)")
        # Set from another thread: the handler may interrupt this one inside the event's own lock.
        threading.Thread(target=self._stopped.set, name="stop-soon").start()

    def _run_with_retries(self, planned: Planned, report: Report) -> None:
        spec, interval = planned.job, planned.interval
        params = parameters(spec.name) if spec.catch_up_in_one_run else parameters(
            spec.name, interval.start.isoformat(), interval.end.isoformat())
        tries = itertools.count(1)

        def attempt() -> Outcome:
            number = next(tries)
            outcome = self._attempt(spec, interval, number, params)
            report.attempts.append((planned, number, outcome))
            state = "ok" if outcome.ok else f"failed: {outcome.error[:200]}"
            self.say(f"{spec.name} {interval.label} attempt {number}/{self.retry.attempts}: {state}")
            return outcome

        trying = Retrying(stop=stop_after_attempt(self.retry.attempts), retry=retry_if_result(lambda o: not o.ok),
                          wait=lambda state: self.retry.wait_before(state.attempt_number + 1),
                          retry_error_callback=last_answer)  # the last failure is the outcome
        outcome = trying(attempt)
        if outcome.ok:
            return
        label = f"[{interval.start.isoformat()}, {interval.end.isoformat()})"
        report.alerts.append(alert(self.cfg, spec.name, label, self.retry.attempts, outcome.failed_cell,
                                   outcome.error, outcome.kept_at))

    def _attempt(self, spec: Job, interval: Interval, attempt: int, params: dict) -> Outcome:
        target = self.cfg.runs_dir / spec.name / interval.label / f"attempt-{attempt}.ipynb"
        return run_attempt(self.cfg, spec, interval, attempt, params, target, progress=self.progress,
                           runner="scheduler")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold runs/scheduler.lock for the pass; a second scheduler gets SchedulerBusy naming the holder."""
        path = self.cfg.runs_dir / "scheduler.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 (held open for as long as the lock is)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise SchedulerBusy(
                    f"another scheduler is running ({holder}); it holds {path}. Wait for it to finish, or stop "
                    "it (Ctrl-C stops it between runs) before starting this one."
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{datetime.now(UTC).isoformat(timespec='seconds')}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # closing releases the lock


def schedule(cfg: Settings, start: datetime, end: datetime | None, watch: bool, retry: Retry,
             poll_s: float = 60.0) -> int:
    """`python -m lib schedule`: 0 when every due run succeeded, 1 when one exhausted its retries."""
    scheduler = Scheduler(cfg, retry)
    report = scheduler.watch(start, poll_s) if watch else scheduler.run(start, end or datetime.now(UTC))
    runs = {(p.job.name, p.interval) for p, _, _ in report.attempts}
    print(f"{len(runs)} runs ({len(report.attempts)} attempts), {len(report.alerts)} alerts, "
          f"{len(report.waiting)} waiting for a dependency", file=sys.stderr if not report.ok else sys.stdout)
    return 0 if report.ok else 1

