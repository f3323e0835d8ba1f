"""Test session wiring: the embedded stack is started on demand and stopped at the end.

Integration tests ask for the `stack` fixture; notebooks start the stack themselves in their setup
cell. Whatever this session started is stopped when it ends, and a stack that was already running
before the session (a developer's `make up`) is left running.
"""

from __future__ import annotations

import pytest

_RUNNING_BEFORE: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    from lib import stack

    _RUNNING_BEFORE.update(stack.running())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from lib import stack

    started_here = stack.running() - _RUNNING_BEFORE
    if started_here:
        stack.down(sorted(started_here))


@pytest.fixture(scope="session")
def live_stack():
    """The running embedded stack (started when needed); yields the settings."""
    from lib import stack as stack_mod
    from lib.config import settings

    stack_mod.up(quiet=True)
    return settings()
