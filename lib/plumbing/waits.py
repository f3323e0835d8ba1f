"""Waiting and retrying, on tenacity: one way to poll until something holds, one way to retry.

A poll asks `check()` every `every_s` until its answer satisfies `until` or `timeout_s` has passed;
an exception from `check` ends the wait at once (a FAILED job does not become RUNNING by asking
again). A timeout raises the caller's own error, built from the last answer, so the message says
what was awaited and what was seen instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)
from tenacity.wait import wait_base

T = TypeVar("T")


def poll(check: Callable[[], T], *, timeout_s: float, every_s: float = 0.5,
         until: Callable[[T], bool] = bool, timed_out: Callable[[T], BaseException]) -> T:
    """`check()` again and again until `until(answer)`; its answer, or `timed_out(last answer)` raised."""
    retrying = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(every_s),
                        retry=retry_if_result(lambda answer: not until(answer)))
    try:
        return retrying(check)
    except RetryError as exc:
        raise timed_out(exc.last_attempt.result()) from None


def last_answer(state: RetryCallState) -> Any:
    """The answer of the attempt tenacity just made (what a wait reads a Retry-After from, or what a
    caller gets when every attempt was a failure it would rather see than raise)."""
    assert state.outcome is not None  # set before any wait, stop or callback runs
    return state.outcome.result()


def retry(step: Callable[[], T], *, attempts: int, wait: wait_base, when: Callable[[BaseException], bool],
          gave_up: Callable[[BaseException], BaseException]) -> T:
    """`step()`, tried again after `wait` when it raises an error `when` accepts, at most `attempts` times.

    Any other error passes through at once; the last accepted one becomes `gave_up(error)`."""
    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception(when))
    try:
        return retrying(step)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        assert last is not None  # only an error is retried
        raise gave_up(last) from last
