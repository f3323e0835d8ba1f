"""Airflow's REST API (/api/v2), the way notebooks and tests drive the DAGs once `lib airflow up` runs them.

A token from /auth/token (the admin's password, kept by lib.stack.airflow), then JSON over httpx:
trigger a run with its conf, follow it, read its task instances, every try of a task and a try's log,
create a backfill and list its runs. Errors are HttpErrors carrying what Airflow said.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenacity import wait_exponential

from lib.config import Settings
from lib.errors import HttpError
from lib.plumbing.http import Rest, checked
from lib.plumbing.waits import poll, retry
from lib.stack.airflow import credentials

#: A DAG run's states that will not change any more.
ENDED = ("success", "failed")


def iso(when: datetime) -> str:
    """A datetime as Airflow wants it in a body: ISO-8601 with its offset (a naive one is refused)."""
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no time zone; Airflow needs an aware datetime")
    return when.isoformat()


class AirflowRest:
    """A client of the api-server at AIRFLOW_URL, logged in as the admin."""

    def __init__(self, cfg: Settings, timeout: float = 30.0) -> None:
        self.url = cfg.airflow_url
        self._rest = Rest(self.url, timeout)
        token = self._rest.call("POST", "/auth/token",
                                {"username": "admin", "password": credentials(cfg)["admin_password"]})
        self._headers = {"Authorization": f"Bearer {token['access_token']}"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; a 503 is tried again. Airflow answers 503 when its metadata database is busy (SQLite
        here: a task's state update holding the lock) and rolls the request back, so a retry is safe."""
        def once() -> Any:
            response = checked(self._rest.response(method, f"/api/v2{path}", body, self._headers))
            return response.json() if response.content else {}

        return retry(once, attempts=6, wait=wait_exponential(multiplier=0.5, max=8),
                     when=lambda exc: isinstance(exc, HttpError) and exc.status == 503, gave_up=lambda exc: exc)

    def dag(self, dag_id: str) -> dict:
        """The DAG as Airflow parsed it (404 until the dag-processor has seen its file)."""
        return self.call("GET", f"/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict:
        """The DAG once the dag-processor has parsed it without import errors."""
        def parsed() -> dict | None:
            try:
                found = self.dag(dag_id)
            except HttpError as exc:
                if exc.status == 404:
                    return None
                raise
            return None if found.get("has_import_errors") else found

        found = poll(parsed, timeout_s=timeout_s, every_s=1.0, until=lambda d: d is not None,
                     timed_out=lambda _: HttpError(f"Airflow at {self.url} has not parsed DAG {dag_id!r} within "
                                                   f"{timeout_s:.0f} s: see GET /api/v2/importErrors"))
        assert found is not None
        return found

    def unpause(self, dag_id: str) -> dict:
        return self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], logical_date: datetime | None = None,
                interval: tuple[datetime, datetime] | None = None) -> dict:
        """A manual run with its conf (checked by Airflow against the DAG's params before it exists)."""
        body: dict[str, Any] = {"dag_run_id": run_id, "conf": conf,
                                "logical_date": iso(logical_date) if logical_date else None}
        if interval:
            body |= {"data_interval_start": iso(interval[0]), "data_interval_end": iso(interval[1])}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", body)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600.0) -> dict:
        """The run once it ended (success or failed); an HttpError naming its state when it takes longer."""
        return poll(lambda: self.run(dag_id, run_id), timeout_s=timeout_s, every_s=2.0,
                    until=lambda run: run["state"] in ENDED,
                    timed_out=lambda run: HttpError(f"DAG run {dag_id}/{run_id} still {run['state']} after "
                                                    f"{timeout_s:.0f} s"))

    def runs(self, dag_id: str, **filters: str) -> list[dict]:
        """The DAG's runs, oldest logical date first (filters: run_type, state, logical_date_gte...)."""
        query = "&".join(f"{k}={v}" for k, v in {"order_by": "logical_date", "limit": "100", **filters}.items())
        return self.call("GET", f"/dags/{dag_id}/dagRuns?{query}")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Each task's current try: state, try_number, start and end, duration."""
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of one task, first to last (a retried task has one per try)."""
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(found["task_instances"], key=lambda t: t["try_number"])

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """One try's log lines (its events), without Airflow's header of where the log came from."""
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                                 "?full_content=true")
        events = [str(entry.get("event", "")) for entry in found.get("content", []) if isinstance(entry, dict)]
        if "::endgroup::" in events:
            events = events[events.index("::endgroup::") + 1:]
        return events

    def backfill(self, dag_id: str, start: datetime, end: datetime, conf: dict[str, Any] | None = None) -> dict:
        """One run per interval whose logical date lies in [start, end] (both ends included, Airflow's rule)."""
        return self.call("POST", "/backfills", {"dag_id": dag_id, "from_date": iso(start), "to_date": iso(end),
                                                "run_backwards": False, "dag_run_conf": conf or {},
                                                "reprocess_behavior": "none", "max_active_runs": 1})

    def close(self) -> None:
        self._rest.close()
