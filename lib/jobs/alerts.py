"""Alerts: what the scheduler says when a job has failed every attempt.

Three channels, the same JSON in each: a clear line on stderr (the operator's terminal or the
cron mail), a JSON line appended to runs/alerts.log (what a monitor tails), and an HTTP POST to
ALERT_WEBHOOK_URL when it is set (a chat or paging webhook). A webhook that does not answer is
reported on stderr and never hides the alert itself.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.config import Settings


def alerts_log(cfg: Settings) -> Path:
    return cfg.runs_dir / "alerts.log"


def alert(cfg: Settings, job: str, interval: str, attempts: int, failed_cell: int | None, error: str,
          notebook: str | None) -> dict[str, Any]:
    """Raise the alarm on every channel; returns the alert as sent."""
    doc = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": job,
        "interval": interval,
        "attempts": attempts,
        "failed_cell": failed_cell,
        "error": error[:1000],
        "notebook": notebook,
    }
    where = f"cell {failed_cell}" if failed_cell is not None else "before its notebook started"
    print(f"ALERT: {job} {interval} failed after {attempts} attempts ({where}): {error[:300]}"
          + (f"; the executed notebook is kept at {notebook}" if notebook else ""), file=sys.stderr, flush=True)
    log = alerts_log(cfg)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write(json.dumps(doc) + "\n")
    if cfg.alert_webhook_url:
        request = urllib.request.Request(cfg.alert_webhook_url, data=json.dumps(doc).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            print(f"(the alert webhook {cfg.alert_webhook_url} did not take it: {exc})", file=sys.stderr)
    return doc
