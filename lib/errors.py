"""Every error the workbook raises on purpose, under one base.

A caller (the CLI, a notebook, the scheduler) catches `WorkbookError` and shows its message,
which always says what went wrong and what to do about it. Anything else that escapes is a bug.
Errors that are also bad values keep `ValueError` as a second base, so `except ValueError`
around parsing still works.
"""

from __future__ import annotations


class WorkbookError(Exception):
    """Base of every error of the project; the message names the problem and the fix."""


class ConfigError(WorkbookError, ValueError):
    """An environment variable holds a value the workbook cannot use."""


class StackError(WorkbookError):
    """A service of the stack is missing, down, or cannot start (a port taken, no Java, no jars)."""


class ParameterError(WorkbookError, ValueError):
    """A bad job or CLI parameter, raised before anything starts."""


class RomanError(WorkbookError, ValueError):
    """A conversion request that has no canonical answer; the message says why."""


class ProduceError(WorkbookError):
    """Records could not be delivered; says which servers and how many were acknowledged."""


class FlinkJobError(WorkbookError):
    """A Flink job could not be submitted or did not reach the expected state."""


class SchedulerBusy(WorkbookError):
    """Another scheduler holds the lock; the message names the holder."""


class InjectedCrash(WorkbookError):
    """Raised at an armed crash point (lib.faults): a drill's stand-in for a killed driver."""


class CommitConflict(WorkbookError):
    """Another run committed to the same table (or offsets) while this one ran; the run is retried
    against the new state (lib.medallion.commits)."""


class EventLogUnavailable(WorkbookError):
    """Kafka did not acknowledge an event in time: the service answers 503 and the client retries."""


class HttpError(WorkbookError):
    """A REST call failed: the server did not answer, or answered with an error; the message carries
    what the server said (lib.plumbing.http). `status` is None when nothing answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
