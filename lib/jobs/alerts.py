"""Alerts: what the scheduler says when a job has failed every attempt, or a layer has gone stale.

Three channels, the same JSON in each: a clear line on stderr (the operator's terminal or the
cron mail), a JSON line appended to runs/alerts.log (what a monitor tails), and an HTTP POST to
ALERT_WEBHOOK_URL when it is set (a chat or paging webhook).

Best effort, never fatal: `alert()` never raises. It is called when something has already gone
wrong (by the scheduler between runs, by Airflow's failure callback), so a channel that fails is
reported on the others and the caller goes on. The webhook gets ALERT_WEBHOOK_TIMEOUT_S (10 s by
default) *in all* (connecting, sending and reading the answer together), not per read: a server that
answers one byte at a time cannot hold the scheduler longer than that.

runs/alerts.log holds one JSON object a line, of two kinds:

- the alert, written first, before any network:
  `{"at", "job", "interval", "attempts", "failed_cell", "error", "notebook"}` (what the webhook gets);
- a freshness alert (lib.jobs.freshness), `{"at", "job": "freshness:<layer>", "kind": "stale" | "recovered",
  "layer", "newest", "age_s", "limit_s"}` (a recovered one adds `"stale_since"`);
- when ALERT_WEBHOOK_URL is set, what became of its delivery, once it is known:
  `{"at": <when delivery ended>, "alert_at": <the alert's "at">, "job", "interval",
  "delivery": "delivered" | "undelivered", "webhook": <the URL up to its host>, "seconds": <time spent>,
  "error": <why; undelivered only>}`.
  Every failure is "undelivered": refused, no complete answer in time, a status other than 2xx
  (redirects are not followed), an answer cut short, a URL that is not http(s) with a host. A monitor greps
  `"delivery": "undelivered"`; a reader counting alerts skips the lines that have "delivery".

The webhook's path is not logged (a chat webhook's path is its secret), only where it points.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.config import Settings, check_webhook, redact_url
from lib.errors import HttpError, WorkbookError
from lib.plumbing.http import post_within


def alerts_log(cfg: Settings) -> Path:
    return cfg.runs_dir / "alerts.log"


@dataclass(frozen=True)
class Delivery:
    """What became of one POST to the webhook: delivered, or why not, and how long it took."""

    delivered: bool
    seconds: float
    error: str = ""


def alert(cfg: Settings, job: str, interval: str, attempts: int, failed_cell: int | None, error: str,
          notebook: str | None) -> dict[str, Any]:
    """Raise the alarm on every channel; returns the alert as sent. Never raises (see the module)."""
    doc: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "job": job,
        "interval": interval,
        "attempts": attempts,
        "failed_cell": failed_cell,
        "error": str(error)[:1000],
        "notebook": notebook,
    }
    where = f"cell {failed_cell}" if failed_cell is not None else "before its notebook started"
    kept = f"; the executed notebook is kept at {notebook}" if notebook else ""
    return notify(cfg, doc, f"ALERT: {job} {interval} failed after {attempts} attempts ({where}): "
                            f"{doc['error'][:300]}{kept}")


def notify(cfg: Settings, doc: dict[str, Any], line: str) -> dict[str, Any]:
    """`line` on stderr, `doc` on the alerts log and to the webhook, its delivery recorded. Never raises.
    The one path of every alert: a failed run's, and freshness's stale and recovered layers."""
    _say(line)
    log = alerts_log(cfg)
    _append(log, doc)
    url = cfg.alert_webhook_url
    if url:
        outcome = deliver(url, doc, cfg.alert_webhook_timeout_s)
        shown = redact_url(url)
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "alert_at": doc["at"], "job": doc["job"],
            "interval": doc.get("interval"), "delivery": "delivered" if outcome.delivered else "undelivered",
            "webhook": shown, "seconds": round(outcome.seconds, 3),
        }
        if not outcome.delivered:
            record["error"] = outcome.error
            _say(f"(the alert webhook {shown} did not take the alert: {outcome.error}; "
                 f"recorded as undelivered in {log})")
        _append(log, record)
    return doc


def deliver(url: str, doc: dict[str, Any], timeout_s: float) -> Delivery:
    """POST `doc` to `url`, taking at most `timeout_s` in all (plus a few milliseconds); never raises."""
    started = time.monotonic()
    try:
        check_webhook(url)  # a Settings built without settings() (replace(), an older process) may hold anything
        post_within(url, doc, timeout_s)
    except Exception as exc:  # every failure is a reason, never an exception for the caller
        return Delivery(False, time.monotonic() - started, _reason(exc, url, timeout_s))
    return Delivery(True, time.monotonic() - started)


def _reason(exc: BaseException, url: str, timeout_s: float) -> str:
    """A failure in words, without the webhook's secret path (some errors repeat the whole URL)."""
    why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, WorkbookError) else str(exc)
    if isinstance(exc, HttpError) and exc.status is not None and 300 <= exc.status < 400:
        why += " (redirects are not followed: set ALERT_WEBHOOK_URL to the address it redirects to)"
    if why.endswith(f"within {timeout_s:g} s"):
        why += " (ALERT_WEBHOOK_TIMEOUT_S)"
    return why.replace(url, redact_url(url))[:500]


def _say(line: str) -> None:
    """A line on stderr, unless stderr itself is gone: an alert must not fail for want of a terminal."""
    with contextlib.suppress(Exception):  # nothing left to report it on
        print(line, file=sys.stderr, flush=True)


def _append(log: Path, record: dict[str, Any]) -> None:
    """One JSON line on the alerts log; a log that cannot be written is said on stderr instead."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
    except Exception as exc:
        _say(f"(could not append to the alerts log {log}: {exc}; this alert is on stderr only)")
