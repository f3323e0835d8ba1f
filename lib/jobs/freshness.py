"""Freshness: how old each layer's newest data is, against how often it should arrive.

Each layer stamps its rows when it writes them: Bronze's `ingested_at`, Silver's `processed_at`, Gold's
`generated_at`. The newest stamp, read from the table's file statistics (the upper bound Iceberg keeps
per column and data file, so no data file is opened), says when the layer last landed anything; its
job's cadence says how often it should. The stream has no stamp column: its Iceberg sink commits at
every checkpoint that carried data, so its freshness is the age of the job's newest completed
checkpoint against its checkpoint interval (an idle stream still checkpoints; a stuck or stopped one
does not).

A layer is *stale* when that age exceeds twice the cadence. `python -m lib freshness` prints the table
(or JSON); the scheduler checks after every pass and alerts through the same path as a failed run
(stderr, runs/alerts.log, the webhook), once per incident: a `stale` alert when a layer turns stale, a
`recovered` line when it is fresh again, nothing in between. The incidents open now are kept in
runs/freshness.json, so a second pass, or a second scheduler process, does not alert again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyiceberg.exceptions import NoSuchTableError

from lib.config import Settings
from lib.errors import HttpError, WorkbookError
from lib.jobs.alerts import notify
from lib.jobs.registry import JOBS
from lib.medallion.catalog import catalog
from lib.medallion.tables import BRONZE_EVENTS, GOLD_DAILY, SILVER_EVENTS
from lib.stream.job import JOB_NAME, StreamJob
from lib.stream.rest import ACTIVE_STATES, FlinkRest

#: The stream's cadence when no run of its job tells its own: the job's default checkpoint interval.
DEFAULT_CHECKPOINT_INTERVAL = timedelta(seconds=int(StreamJob().checkpoint_interval.removesuffix("s")))
#: A layer is stale beyond this many of its cadences.
STALE_AFTER = 2
#: (layer, table, the column its job stamps when it writes a row)
STAMPED = (("bronze", BRONZE_EVENTS, "ingested_at"), ("silver", SILVER_EVENTS, "processed_at"),
           ("gold", GOLD_DAILY, "generated_at"))


@dataclass(frozen=True)
class Freshness:
    """One layer's newest data, its age and its cadence, at one moment."""

    layer: str
    source: str
    newest: datetime | None
    age: timedelta | None
    cadence: timedelta

    @property
    def limit(self) -> timedelta:
        return STALE_AFTER * self.cadence

    @property
    def stale(self) -> bool:
        """Older than the limit. A layer that never landed anything is not stale: it has not started."""
        return self.age is not None and self.age > self.limit

    @property
    def status(self) -> str:
        return "no data yet" if self.age is None else "STALE" if self.stale else "fresh"

    def row(self) -> dict[str, Any]:
        return {"layer": self.layer, "source": self.source,
                "newest": self.newest.isoformat(timespec="seconds") if self.newest else None,
                "age_s": round(self.age.total_seconds()) if self.age is not None else None,
                "cadence_s": round(self.cadence.total_seconds()), "limit_s": round(self.limit.total_seconds()),
                "status": self.status}


def newest_stamp(cfg: Settings, table: str, column: str) -> datetime | None:
    """The largest value of a timestamp column, from the data files' statistics; None for an empty table."""
    try:
        files = catalog(cfg).load_table(table).inspect.files()
    except NoSuchTableError:
        return None
    if not files.num_rows:
        return None
    metrics = files.column("readable_metrics").combine_chunks().field(column)
    bounds = [bound for bound in metrics.field("upper_bound").to_pylist() if bound is not None]
    return max(bounds).astimezone(UTC) if bounds else None


def _age(now: datetime, newest: datetime | None) -> timedelta | None:
    return max(now - newest, timedelta(0)) if newest else None


def stream_freshness(cfg: Settings, now: datetime, name: str = JOB_NAME) -> Freshness:
    """The stream job's newest completed checkpoint, of its running run or of the last one that ran on
    this cluster, against its checkpoint interval. A stopped job's checkpoints age, so it turns stale;
    a job that never completed a checkpoint reads as no data."""
    flink = FlinkRest(cfg)
    runs = [found for found in flink.jobs() if found["name"] == name]
    running = next((found["jid"] for found in runs if found["state"] in ACTIVE_STATES), None)
    newest: tuple[int, str] | None = None
    for found in runs:
        latest = flink.latest_checkpoint(found["jid"])
        if latest and (newest is None or latest["latest_ack_timestamp"] > newest[0]):
            newest = (latest["latest_ack_timestamp"], found["jid"])
    configured = running or (newest[1] if newest else None)
    interval = (timedelta(milliseconds=flink.checkpoint_config(configured)["interval"]) if configured
                else DEFAULT_CHECKPOINT_INTERVAL)
    source = f"newest completed checkpoint of Flink job {name}" + ("" if running else " (not running)")
    when = datetime.fromtimestamp(newest[0] / 1000, UTC) if newest else None
    return Freshness("stream", source, when, _age(now, when), interval)


def freshness(cfg: Settings, now: datetime | None = None, stream_job: str = JOB_NAME) -> list[Freshness]:
    """Every layer's freshness now: Bronze, Silver, Gold from their stamps, the stream (the Flink job of
    that name) from Flink."""
    now = now or datetime.now(UTC)
    found = []
    for layer, table, column in STAMPED:
        newest = newest_stamp(cfg, table, column)
        found.append(Freshness(layer, f"{table}.{column}", newest, _age(now, newest), JOBS[layer].every))
    try:
        found.append(stream_freshness(cfg, now, stream_job))
    except (HttpError, WorkbookError) as exc:  # Flink down: the stream cannot be fresh
        found.append(Freshness("stream", f"Flink's REST API unreachable: {str(exc)[:120]}", None, None,
                               DEFAULT_CHECKPOINT_INTERVAL))
    return found


def check(cfg: Settings, now: datetime | None = None, stream_job: str = JOB_NAME) -> list[dict[str, Any]]:
    """Alert each layer that turned stale and say each that recovered, once per incident; returns what
    was sent. The open incidents live in runs/freshness.json."""
    path = cfg.runs_dir / "freshness.json"
    open_incidents: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    sent = []
    for layer in freshness(cfg, now, stream_job):
        at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        row = layer.row()
        facts = {key: row[key] for key in ("layer", "newest", "age_s", "limit_s")}
        if layer.stale and layer.layer not in open_incidents:
            doc = {"at": at, "job": f"freshness:{layer.layer}", "kind": "stale", **facts}
            sent.append(notify(cfg, doc, f"ALERT: {layer.layer} is stale: its newest data ({layer.source}) is "
                                         f"{_span(layer.age)} old, more than {_span(layer.limit)} "
                                         f"({STALE_AFTER} x its cadence of {_span(layer.cadence)})"))
            open_incidents[layer.layer] = {"since": at, "newest": facts["newest"]}
        elif not layer.stale and layer.age is not None and layer.layer in open_incidents:
            since = open_incidents.pop(layer.layer)["since"]
            doc = {"at": at, "job": f"freshness:{layer.layer}", "kind": "recovered", "stale_since": since, **facts}
            sent.append(notify(cfg, doc, f"recovered: {layer.layer} is fresh again ({_span(layer.age)} old; "
                                         f"stale since {since})"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(open_incidents, indent=1))
    return sent


def _span(span: timedelta | None) -> str:
    """A duration as a person says it: 45 s, 12 min, 3.5 h, 2.0 d."""
    if span is None:
        return "unknown"
    seconds = span.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} d"
