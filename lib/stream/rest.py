"""Flink's REST API, the one way the workbook talks to the session cluster once a job is submitted.

Jobs, their states, checkpoints and savepoints, per-operator metrics and watermarks, failures,
and the taskmanagers' stdout (where the print sink writes the console): all of it over HTTP at
FLINK_REST_URL, so the same calls work against the embedded stack, docker-compose or a cluster.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from lib.config import Settings
from lib.errors import FlinkJobError, HttpError
from lib.plumbing.http import Rest
from lib.plumbing.waits import poll

#: Job states in which a job still runs, or will again.
ACTIVE_STATES = ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?")


class FlinkRest:
    """A client of one Flink cluster's REST API; its errors are FlinkJobErrors carrying what Flink said."""

    def __init__(self, cfg: Settings, timeout: float = 10.0) -> None:
        self.url = cfg.flink_rest_url
        self._rest = Rest(self.url, timeout)

    def _call(self, path: str, method: str = "GET", body: dict | None = None) -> Any:
        try:
            return self._rest.call(method, path, body)
        except HttpError as exc:  # Flink explains itself in the body: {"errors": [...]}
            raise FlinkJobError(f"Flink's REST API: {exc}") from None

    def _text(self, path: str) -> str:
        try:
            return self._rest.text(path)
        except HttpError as exc:
            raise FlinkJobError(f"Flink's REST API: {exc}") from None

    def overview(self) -> dict:
        """Taskmanagers, slots and job counts of the cluster."""
        return self._call("/overview")

    def jobs(self) -> list[dict]:
        """Every job the cluster knows (running or ended since it started), newest first."""
        found = self._call("/jobs/overview").get("jobs", [])
        return sorted(found, key=lambda j: j.get("start-time", 0), reverse=True)

    def job(self, job_id: str) -> dict:
        return self._call(f"/jobs/{job_id}")

    def restarts(self, job_id: str) -> int:
        """How many times the job restarted after a failure since it was submitted (Flink's numRestarts)."""
        found = self._call(f"/jobs/{job_id}/metrics?get=numRestarts")
        return int(float(found[0]["value"])) if found else 0

    def newest_job(self, name: str) -> dict | None:
        """The newest job with this name in any state (a FAILED job included), as /jobs/overview has it."""
        return next((j for j in self.jobs() if j["name"] == name), None)

    def running_job(self, name: str) -> str | None:
        """The id of the running (or restarting) job with this name, if any: a notebook re-run finds its job."""
        for found in self.jobs():
            if found["name"] == name and found["state"] in ACTIVE_STATES:
                return found["jid"]
        return None

    def _raise_if_failed(self, job_id: str, state: str) -> None:
        """A FAILED job will not come back: raise with its root exception instead of waiting on."""
        if state == "FAILED":
            root = self._call(f"/jobs/{job_id}/exceptions").get("root-exception", "")
            raise FlinkJobError(f"job {job_id} FAILED: {root[:2000]}")

    def wait_for_state(self, job_id: str, states: set[str], timeout_s: float = 120.0) -> str:
        """Poll until the job is in one of `states`; a FAILED job raises with its root exception."""
        def state() -> str:
            found = self.job(job_id)["state"]
            if found not in states:
                self._raise_if_failed(job_id, found)
            return found

        return poll(state, timeout_s=timeout_s, until=lambda found: found in states,
                    timed_out=lambda found: FlinkJobError(f"job {job_id} stayed {found} for {timeout_s:.0f}s; expected "
                                                          f"one of {sorted(states)}. {self.why(job_id)}"))

    def wait_for_tasks(self, job_id: str, timeout_s: float = 120.0) -> None:
        """Wait until every task of a RUNNING job runs (a job is RUNNING while its tasks still deploy)."""
        def all_running() -> bool:
            info = self.job(job_id)
            self._raise_if_failed(job_id, info["state"])
            return info["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in info.get("vertices", []))

        poll(all_running, timeout_s=timeout_s, timed_out=lambda _: FlinkJobError(
            f"job {job_id}: not every task was RUNNING within {timeout_s:.0f}s. {self.why(job_id)}"))

    def cancel(self, job_id: str, timeout_s: float = 60.0) -> str:
        """Cancel a job and wait until it is CANCELED (or already finished)."""
        state = self.job(job_id)["state"]
        if state in ("CANCELED", "FINISHED", "FAILED"):
            return state
        self._call(f"/jobs/{job_id}?mode=cancel", method="PATCH")
        return self.wait_for_state(job_id, {"CANCELED", "FINISHED"}, timeout_s)

    def stop_with_savepoint(self, job_id: str, timeout_s: float = 120.0) -> str:
        """Stop the job with a savepoint (a consistent snapshot taken as it stops); returns its path.

        The graceful way to restart or upgrade a job: unlike a cancel, nothing after the last
        checkpoint has to be read again, and the Iceberg sinks commit what the savepoint covers.
        """
        self.wait_for_tasks(job_id)  # a savepoint needs every task running, not only the job
        # No target directory: the cluster's own execution.checkpointing.savepoint-dir decides.
        trigger = self._call(f"/jobs/{job_id}/stop", method="POST", body={"drain": False})
        status = poll(lambda: self._call(f"/jobs/{job_id}/savepoints/{trigger['request-id']}"), timeout_s=timeout_s,
                      until=lambda found: found.get("status", {}).get("id") == "COMPLETED",
                      timed_out=lambda _: FlinkJobError(
                          f"job {job_id}: the stop-with-savepoint did not complete within {timeout_s:.0f}s"))
        operation = status.get("operation", {})
        if "location" not in operation:
            cause = operation.get("failure-cause", {})
            first = str(cause.get("stack-trace", cause)).splitlines()[0][:500]
            raise FlinkJobError(f"stopping job {job_id} with a savepoint failed: {first}")
        self.wait_for_state(job_id, {"FINISHED", "CANCELED"}, timeout_s=timeout_s)
        return operation["location"]

    def checkpoints(self, job_id: str) -> dict:
        """The job's checkpoint statistics: counts, latest completed, history."""
        return self._call(f"/jobs/{job_id}/checkpoints")

    def checkpoint_config(self, job_id: str) -> dict:
        """How the job checkpoints: interval (ms), timeout, mode, externalization."""
        return self._call(f"/jobs/{job_id}/checkpoints/config")

    def latest_checkpoint(self, job_id: str) -> dict | None:
        """The job's latest completed checkpoint (id, external_path, state_size, end_to_end_duration), or None."""
        return (self.checkpoints(job_id).get("latest") or {}).get("completed")

    def restored_from(self, job_id: str) -> str | None:
        """The checkpoint or savepoint this job's state was restored from, or None for a fresh start."""
        return ((self.checkpoints(job_id).get("latest") or {}).get("restored") or {}).get("external_path")

    def wait_for_checkpoint(self, job_id: str, after_id: int = 0, timeout_s: float = 120.0) -> dict:
        """Wait for a completed checkpoint newer than `after_id`; returns it (what it covers is now committed)."""
        def newer() -> dict | None:
            done = self.latest_checkpoint(job_id)
            if done and done["id"] > after_id:
                return done
            self._raise_if_failed(job_id, self.job(job_id)["state"])
            return None

        done = poll(newer, timeout_s=timeout_s, until=lambda found: found is not None,
                    timed_out=lambda _: FlinkJobError(f"job {job_id}: no checkpoint after #{after_id} within "
                                                      f"{timeout_s:.0f}s"))
        assert done is not None  # what `until` waited for
        return done

    def vertex_metrics(self, job_id: str, settle_s: float = 1.5) -> list[dict]:
        """Per operator chain: name, status, records in and out, its current input watermark (ms or None), and
        when the figures were sampled.

        Flink's REST API serves metrics from a store that a fetcher refreshes asynchronously, at most every
        `metrics.fetcher.update-interval`, when a request arrives: the first request after a quiet spell
        gets the old values (zeros for a job nobody asked about). So ask once, give the fetch `settle_s`
        to land, and read again: the figures are then as of the first request, which is what `sampled_at`
        says.
        """
        self._call(f"/jobs/{job_id}")  # wakes the fetcher
        sampled_at = datetime.now(UTC)
        if settle_s:
            time.sleep(settle_s)
        rows = []
        for vertex in self.job(job_id).get("vertices", []):
            marks = self._call(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
            values = [int(float(m["value"])) for m in marks if "currentInputWatermark" in m["id"]]
            low = min(values) if values else None
            rows.append({
                "operator": vertex["name"],
                "status": vertex["status"],
                "records_in": vertex["metrics"].get("read-records", 0),
                "records_out": vertex["metrics"].get("write-records", 0),
                # Long.MIN_VALUE means "no watermark yet".
                "watermark_ms": low if low is not None and low > -(2**62) else None,
                "sampled_at": sampled_at,
            })
        return rows

    def exceptions(self, job_id: str) -> list[str]:
        """The job's recent failures, newest first (a restarting job shows why here)."""
        history = self._call(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
        return [f"{e.get('exceptionName', '?')}: {str(e.get('stacktrace', '')).splitlines()[0][:300]}" for e in history]

    def why(self, job_id: str, last: int = 3) -> str:
        """The latest failures and the taskmanagers' slots, for an error message that explains a stuck job."""
        failures = self.exceptions(job_id)[:last] or ["none recorded"]
        managers = self.taskmanagers()
        slots = ", ".join(f"{m['id']} ({m.get('freeSlots', '?')} of {m.get('slotsNumber', '?')} slots free)"
                          for m in managers) or "none registered"
        return f"Latest failures: {' | '.join(failures)}. Taskmanagers: {slots}."

    def console_lines(self, tag: str, last: int | None = 10) -> list[str]:
        """Lines a print sink with this identifier wrote to the taskmanagers' stdout, oldest first.

        `last`: how many of the newest (None: all). Read through the REST API's stdout endpoint of
        every registered taskmanager, never from their files, so it works wherever the cluster runs
        and however many taskmanagers it has. A sink running in parallel prefixes its lines
        `tag:<subtask>> `, one running alone `tag> `; lines from several taskmanagers are merged
        by the first timestamp each line holds (its event time).
        """
        pattern = re.compile(rf"^{re.escape(tag)}(:\d+)?> ")
        found: list[str] = []
        managers = self.taskmanagers()
        for manager in managers:
            text = self._text(f"/taskmanagers/{manager['id']}/stdout")
            found += [line for line in text.splitlines() if pattern.match(line)]
        if len(managers) > 1:
            found.sort(key=lambda line: (m.group(0) if (m := _TIMESTAMP.search(line)) else ""))
        return found[-last:] if last else found

    def taskmanagers(self) -> list[dict]:
        """The registered taskmanagers: id, slots (total and free), hardware."""
        return self._call("/taskmanagers").get("taskmanagers", [])

    def job_taskmanagers(self, job_id: str) -> set[str]:
        """The ids of the taskmanagers that run at least one of the job's subtasks."""
        ids: set[str] = set()
        for vertex in self.job(job_id).get("vertices", []):
            found = self._call(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers").get("taskmanagers", [])
            ids |= {t["taskmanager-id"] for t in found if t.get("taskmanager-id")}
        return ids
