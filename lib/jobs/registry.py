"""The job registry: the one place that knows each scheduled job.

A job is its notebook, run by papermill. The registry says, per job: the notebook, the cadence,
which interval a due time stands for, the parameters it accepts, the services it needs and the
job it depends on. The CLI (`python -m lib run`), the scheduler and `make run` all read it;
nothing else decides an interval.

Intervals are half-open, [start, end), UTC, aligned to the cadence: Bronze's quarter hours,
Silver's hours, Gold's days. The run *due* at 01:00 covers [00:00, 01:00) for Silver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.errors import ParameterError

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: The times a parameter may name: Python's datetime range less a day at each end, so that a step of
#: the longest cadence (Gold's day) from any accepted time still is a datetime.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Interval:
    """A half-open time range [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ParameterError(
                f"--start {self.start.isoformat()} is not before --end {self.end.isoformat()}; the interval "
                "is [start, end), so start must come first."
            )

    @property
    def label(self) -> str:
        """The interval's start as a compact UTC stamp, for folder names and listings."""
        return self.start.strftime("%Y-%m-%dT%H%MZ")


@dataclass(frozen=True)
class Job:
    """One scheduled job: what runs, how often, on what, after what."""

    name: str
    notebook: str
    every: timedelta
    #: Offsets-driven jobs (Bronze) read whatever is new: one run catches up on every missed interval.
    #: Interval-driven jobs (Silver, Gold) run each missed interval in order, as Airflow's catch-up does.
    catch_up_in_one_run: bool
    accepts: tuple[str, ...]
    needs: tuple[str, ...] = ("kafka", "iceberg-rest")
    depends_on: str | None = None
    what: str = ""
    #: False for a job an operator starts by hand (a migration): no schedule, an explicit interval.
    scheduled: bool = True

    @property
    def cron(self) -> str:
        """The cadence as a cron expression (UTC), for orchestrators that schedule by cron (Airflow)."""
        minutes = int(self.every.total_seconds() // 60)
        if minutes < 60 and 60 % minutes == 0:
            return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
        if minutes % 60 == 0 and minutes < 24 * 60 and (24 * 60) % minutes == 0:
            hours = minutes // 60
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        if minutes == 24 * 60:
            return "0 0 * * *"
        raise ParameterError(f"{self.name}: a cadence of {self.every} has no cron expression; use a divisor of a day")

    def floor(self, when: datetime) -> datetime:
        """The cadence boundary at or before `when`."""
        steps = (when.astimezone(UTC) - EPOCH) // self.every
        return EPOCH + steps * self.every

    def default_interval(self, now: datetime | None = None) -> Interval:
        """The interval a run started now covers: the last full one (Silver: the last full hour)."""
        end = self.floor(now or datetime.now(UTC))
        return Interval(end - self.every, end)

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Every full interval of this cadence inside [start, end), in order."""
        first = self.floor(start)
        if first < start.astimezone(UTC):
            first += self.every
        found = []
        while first + self.every <= end.astimezone(UTC):
            found.append(Interval(first, first + self.every))
            first += self.every
        return found


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("bronze", "03_bronze.ipynb", timedelta(minutes=15), catch_up_in_one_run=True,
            accepts=("start", "end", "backfill", "max_records"),
            what="land new Kafka records (by offsets); a backfill re-reads [start, end) of event time"),
        Job("silver", "04_silver.ipynb", timedelta(hours=1), catch_up_in_one_run=False,
            accepts=("start", "end"), depends_on="bronze",
            what="validate Bronze rows ingested in [start, end)"),
        Job("gold", "05_gold.ipynb", timedelta(days=1), catch_up_in_one_run=False,
            accepts=("start", "end"), depends_on="silver",
            what="recompute the (date, user) and (date, client) keys Silver touched in [start, end)"),
        Job("maintain", "08_maintenance.ipynb", timedelta(days=1), catch_up_in_one_run=True,
            accepts=("start", "end"), needs=("iceberg-rest", "flink-jobmanager"),
            what="compact the closed days, rewrite manifests, expire old snapshots and remove old orphan files "
                 "of every table; the interval's end is the run's clock"),
        Job("migrate-silver", "07_schema_migration.ipynb", timedelta(days=1), catch_up_in_one_run=False,
            accepts=("start", "end"), scheduled=False,
            what="add event schema v2's columns to Silver and re-derive them for the events of [start, end) "
                 "of event time from Bronze's raw payloads"),
    )
}


def day_of_intervals(day: datetime) -> list[tuple[str, Interval]]:
    """Every scheduled job's intervals on one UTC day, in dependency order: what a day of the schedule runs."""
    start = day.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return [(spec.name, interval) for spec in scheduled_jobs()
            for interval in spec.intervals(start, start + timedelta(days=1))]


def scheduled_jobs() -> list[Job]:
    """The jobs a scheduler runs, in dependency order (the registry's order)."""
    return [spec for spec in JOBS.values() if spec.scheduled]


def job(name: str) -> Job:
    """The registered job of that name, or a ParameterError listing the jobs."""
    if name not in JOBS:
        raise ParameterError(f"job={name!r} is unknown; choose one of: {', '.join(JOBS)}.")
    return JOBS[name]


def parse_time(value: str, name: str) -> datetime:
    """Parse an ISO-8601 date or timestamp as UTC; naive values are taken as UTC.

    Only instants in [EARLIEST, LATEST] are accepted: converting to UTC near Python's year 1 or 9999
    overflows, and so does a cadence step past them, which would end a run with a traceback instead
    of the exit code 2 of a bad parameter.
    """
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ParameterError(
            f"{name}={value!r} is not an ISO-8601 date or time; use for example 2026-11-27 or "
            "2026-11-27T13:00:00+00:00."
        ) from None
    try:
        utc = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ParameterError(
            f"{name}={value!r} is outside the supported range: give a time from {EARLIEST.isoformat()} to "
            f"{LATEST.isoformat()} (UTC), e.g. 2026-11-27T13:00:00+00:00."
        )
    return utc


def parameters(name: str, start: str | None = None, end: str | None = None,
               backfill: bool = False, max_records: int | None = None) -> dict[str, Any]:
    """Validate a run's parameters against the job and turn them into its notebook's parameters.

    Refused before anything starts: an unknown job, a parameter the job does not accept, a bad or
    reversed date, half an interval.
    """
    spec = job(name)
    given = {"start": start, "end": end, "backfill": backfill or None, "max_records": max_records}
    refused = [p for p, v in given.items() if v is not None and p not in spec.accepts]
    if refused:
        accepted = ", ".join(f"--{p}" for p in spec.accepts)
        raise ParameterError(f"{name} does not take --{', --'.join(refused)}; it accepts {accepted}. "
                             f"({name}: {spec.what})")
    if max_records is not None and max_records < 1:
        raise ParameterError(f"--max-records {max_records}: give a positive number of records per run")
    if backfill and not (start and end):
        raise ParameterError("--backfill needs both --start and --end: the interval to re-read.")
    if bool(start) != bool(end):
        raise ParameterError("give both --start and --end, or neither (the job's default interval).")
    if not spec.scheduled and not start:
        raise ParameterError(f"{name} has no schedule, so no default interval: give --start and --end, e.g. "
                             f"--start 2026-01-01 --end 2027-01-01. ({name}: {spec.what})")
    if start and end:
        interval = Interval(parse_time(start, "--start"), parse_time(end, "--end"))
    elif name == "bronze":
        interval = None  # offsets decide what an incremental Bronze run reads
    else:
        interval = spec.default_interval()
    # A scheduled or operator's run is the job alone: the lesson's demonstrations (a re-delivery, a
    # backfill, a naive job on a scratch table) run only when a learner or `make run` executes it.
    params: dict[str, Any] = {"LESSON": False}
    if interval is not None:
        params |= {"INTERVAL_START": interval.start.isoformat(), "INTERVAL_END": interval.end.isoformat()}
    if "backfill" in spec.accepts:
        params["BACKFILL"] = backfill
    if max_records is not None:
        params["MAX_RECORDS"] = max_records
    return params
