"""Test session wiring: the embedded stack is started on demand and stopped at the end.

Integration tests ask for the `live_stack` fixture (the settings of a running stack); notebooks
start the stack themselves in their setup cell. Whatever this session started is stopped when
it ends, and a stack that was already running before the session (a developer's `make up`) is
left running. Unit tests start nothing: `make test-unit` runs with every port of the stack free.
"""

from __future__ import annotations

import pytest

from lib import stack
from lib.config import Settings, settings
from lib.kafka import quiet_client_logs

_RUNNING_BEFORE: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    quiet_client_logs()
    _RUNNING_BEFORE.update(stack.running(settings()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cfg = settings()
    started_here = stack.running(cfg) - _RUNNING_BEFORE
    if started_here:
        stack.down(cfg, sorted(started_here))


@pytest.fixture(scope="session")
def cfg() -> Settings:
    """The settings, resolved once for the session (tests that change the environment build their own)."""
    return settings()


@pytest.fixture(scope="session")
def live_stack(cfg: Settings) -> Settings:
    """The running embedded stack (started when needed); returns its settings."""
    stack.up(cfg, quiet=True)
    return cfg
