"""Alerts are best effort and never fatal: every webhook failure is logged as undelivered, in bounded time.

The webhooks are real local servers (tests/unit/webhooks.py) on ephemeral ports; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lib.config import Settings, settings
from lib.jobs.alerts import alert, alerts_log
from lib.stack.process import free_port
from tests.unit import webhooks

#: The webhook's time in all for these tests, and what alert() may take beyond it.
DEADLINE_S = 2.0
SLACK_S = 0.5


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return replace(settings(), runs_dir=tmp_path / "runs", alert_webhook_timeout_s=DEADLINE_S)


def _alert(cfg: Settings) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    doc = alert(cfg, "bronze", "[2026-01-01T00:00:00+00:00, 2026-01-01T02:00:00+00:00)", 3, 4, "kafka is down",
                "runs/bronze/attempt-3.ipynb")
    return time.monotonic() - started, doc


def _log(cfg: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The alerts log's alerts, and its delivery records."""
    lines = [json.loads(line) for line in alerts_log(cfg).read_text().splitlines()]
    return [d for d in lines if "delivery" not in d], [d for d in lines if "delivery" in d]


def _no_webhook_thread_left(within_s: float = 2.0) -> bool:
    """The thread that posted is gone soon after alert() gave up on it: nothing keeps trickling."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(t.name == "http-post-within" and t.is_alive() for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


def test_a_good_webhook_gets_the_alert_and_the_log_says_delivered(cfg: Settings) -> None:
    with webhooks.webhook(webhooks.good) as (url, received):
        elapsed, doc = _alert(replace(cfg, alert_webhook_url=url))
    assert elapsed < DEADLINE_S
    alerts, deliveries = _log(replace(cfg, alert_webhook_url=url))
    assert received == alerts == [doc]
    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert delivery["delivery"] == "delivered" and "error" not in delivery
    assert (delivery["job"], delivery["interval"], delivery["alert_at"]) == (doc["job"], doc["interval"], doc["at"])
    assert "secret-token" not in alerts_log(cfg).read_text()  # the webhook's path is its secret: never logged


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (webhooks.trickling, f"no complete answer within {DEADLINE_S:g} s"),
        (webhooks.stalling, f"no complete answer within {DEADLINE_S:g} s"),
        (webhooks.short, "cut short (peer closed connection without sending complete message body "
                         "(received 3 bytes, expected 100))"),
        (webhooks.failing, "answered 500 Internal Server Error: down for maintenance"),
    ],
    ids=["trickles-a-byte-every-half-second", "stalls", "answers-short", "answers-500"],
)
def test_a_misbehaving_webhook_costs_at_most_the_deadline_and_is_logged_undelivered(
        cfg: Settings, capsys: pytest.CaptureFixture[str], behaviour: webhooks.Behaviour, reason: str) -> None:
    with webhooks.webhook(behaviour) as (url, _):
        elapsed, doc = _alert(replace(cfg, alert_webhook_url=url))
        assert elapsed < DEADLINE_S + SLACK_S, f"alert() took {elapsed:.2f} s"
        assert _no_webhook_thread_left()
    alerts, deliveries = _log(cfg)
    assert alerts == [doc]
    assert [(d["delivery"], d["alert_at"]) for d in deliveries] == [("undelivered", doc["at"])]
    assert reason in deliveries[0]["error"]
    assert deliveries[0]["webhook"] == url.removesuffix("/hooks/secret-token") + "/..."
    err = capsys.readouterr().err
    assert "ALERT: bronze" in err and "did not take the alert" in err and reason in err


def test_a_webhook_nobody_listens_on_is_logged_undelivered_at_once(cfg: Settings) -> None:
    elapsed, _ = _alert(replace(cfg, alert_webhook_url=f"http://127.0.0.1:{free_port()}/alerts"))
    assert elapsed < DEADLINE_S
    _, deliveries = _log(cfg)
    assert deliveries[0]["delivery"] == "undelivered" and "refused" in deliveries[0]["error"].lower()


@pytest.mark.parametrize(
    ("url", "reason"),
    [("hooks.example.com/alerts", "must be an http:// or https:// URL"),
     ("http://127.0.0.1:x/alerts", "a port from 1 to 65535"), ("http:///alerts", "with a host")],
    ids=["no-scheme", "bad-port", "no-host"],
)
def test_a_url_that_cannot_be_posted_to_is_logged_undelivered_not_raised(cfg: Settings, url: str, reason: str) -> None:
    """settings() refuses these; a Settings built otherwise (replace(), an older process) must not crash the caller."""
    elapsed, _ = _alert(replace(cfg, alert_webhook_url=url))
    assert elapsed < DEADLINE_S
    _, deliveries = _log(cfg)
    assert deliveries[0]["delivery"] == "undelivered" and reason in deliveries[0]["error"]


def test_an_unwritable_log_is_said_on_stderr_and_the_webhook_still_gets_the_alert(
        cfg: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("runs/ cannot be created under a file")
    with webhooks.webhook(webhooks.good) as (url, received):
        _, doc = _alert(replace(cfg, runs_dir=blocked / "runs", alert_webhook_url=url))
    assert received == [doc]
    err = capsys.readouterr().err
    assert "ALERT: bronze" in err and "could not append to the alerts log" in err


def test_a_closed_stderr_does_not_stop_the_alert(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = io.StringIO()
    gone.close()
    monkeypatch.setattr("sys.stderr", gone)
    with webhooks.webhook(webhooks.failing) as (url, _):
        _alert(replace(cfg, alert_webhook_url=url))
    alerts, deliveries = _log(cfg)
    assert len(alerts) == 1 and deliveries[0]["delivery"] == "undelivered"


def test_without_a_webhook_the_log_has_the_alert_only(cfg: Settings) -> None:
    _, doc = _alert(replace(cfg, alert_webhook_url=""))
    assert _log(cfg) == ([doc], [])
