"""Test session wiring: the embedded stack is started on demand and stopped at the end.

Integration tests ask for the `live_stack` fixture (the settings of a running stack); notebooks
start the stack themselves in their setup cell. Whatever this session started is stopped when
it ends, and a stack that was already running before the session (a developer's `make up`) is
left running. Unit tests start nothing: `make test-unit` runs with every port of the stack free.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from pathlib import Path

import pytest

from lib import stack
from lib.config import Settings, settings
from lib.jobs.runner import RECORD_KEY
from lib.kafka import quiet_client_logs
from tests.notebooks.figures import CHECKS

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
    """The settings, resolved once for the session (tests that change the environment build their own).

    This process's own Spark session lives as long as the test session and does many jobs' work: it gets
    both JIT tiers (SPARK_JIT=full). With the first tier alone, the default made for short job
    processes, its tests ran twice as long (a migration test 53 s -> 109 s). The jobs the tests start as
    processes keep the environment's default."""
    return replace(settings(), spark_jit="full")


@pytest.fixture(scope="session")
def live_stack(cfg: Settings) -> Settings:
    """The running embedded stack (started when needed); returns its settings."""
    stack.up(cfg, quiet=True)
    return cfg


# The notebooks' recorded figures, checked in nbval's own execution (tests/notebooks/figures.py).
_FIGURES: dict[str, dict] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, None, None]:
    """Keep the figures an executed notebook cell recorded in its outputs' metadata (nbval's cells only)."""
    yield
    outputs = getattr(item, "test_outputs", None)
    if call.when == "call" and outputs:
        for output in outputs:
            recorded = (output.get("metadata") or {}).get(RECORD_KEY)
            if recorded:
                _FIGURES.setdefault(Path(str(item.path)).name, {}).update(recorded)


class RecordedFigures(pytest.Item):
    """A notebook's figures checked after its last cell ran, in the same kernel session."""

    def runtest(self) -> None:
        needs, check = CHECKS[self.path.name]
        missing = [name for name in needs if name not in _FIGURES]
        assert not missing, f"no figures recorded by {', '.join(missing)}: did its cells fail?"
        check(_FIGURES)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: recorded figures"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """After each notebook's last nbval cell, its figures' check, when every notebook it reads is executed too."""
    last: dict[str, int] = {}
    for index, item in enumerate(items):
        if hasattr(item, "cell_num"):  # an nbval cell
            last[item.path.name] = index
    for name, index in sorted(last.items(), key=lambda kv: kv[1], reverse=True):
        if name in CHECKS and all(need in last for need in CHECKS[name][0]):
            cell = items[index]
            items.insert(index + 1, RecordedFigures.from_parent(cell.parent, name="recorded figures"))
