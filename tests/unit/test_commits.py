"""The concurrency helpers without Spark: the retry on a lost race, and the rendezvous that makes a
race certain."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lib import faults
from lib.config import settings
from lib.errors import CommitConflict, ConfigError, InjectedCrash
from lib.medallion import commits


def test_a_lost_race_is_run_again_and_says_how_often() -> None:
    seen = []

    def step(conflicts: int) -> int:
        seen.append(conflicts)
        if conflicts < 2:
            raise RuntimeError("org.apache.iceberg.exceptions.ValidationException: Found conflicting files")
        return conflicts

    assert commits.retry_on_conflict(step, "bronze") == 2 and seen == [0, 1, 2]


def test_any_other_error_passes_through_at_once() -> None:
    calls = []

    def step(conflicts: int) -> None:
        calls.append(conflicts)
        raise ValueError("a bug, not a race")

    with pytest.raises(ValueError):
        commits.retry_on_conflict(step, "silver")
    assert calls == [0]


def test_a_run_that_keeps_losing_gives_up_with_a_clear_error() -> None:
    def step(conflicts: int) -> None:
        raise CommitConflict("offsets overlap")

    with pytest.raises(CommitConflict, match=r"3 times in a row.*nothing was doubled"):
        commits.retry_on_conflict(step, "gold", attempts=3)


def test_runs_meet_at_a_rendezvous_before_either_goes_on(tmp_path: Path) -> None:
    passed: list[float] = []
    faults.rendezvous_at("bronze.before_events", tmp_path, parties=2)
    try:
        def run(delay: float) -> None:
            time.sleep(delay)
            faults.checkpoint("bronze.before_events")
            passed.append(time.monotonic())
            faults.checkpoint("bronze.before_events")  # once per run: the second time does not wait

        began = time.monotonic()
        threads = [threading.Thread(target=run, args=(d,)) for d in (0.0, 0.5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        faults.rendezvous_at(None)
    assert len(passed) == 2 and min(passed) - began >= 0.5  # the early one waited for the late one


def test_a_rendezvous_nobody_else_reaches_fails_instead_of_hanging(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "RENDEZVOUS_TIMEOUT_S", 0.2)
    faults.rendezvous_at("gold.before_merge", tmp_path, parties=2)
    try:
        with pytest.raises(InjectedCrash, match="1 of 2 runs arrived within"):
            faults.checkpoint("gold.before_merge")
    finally:
        faults.rendezvous_at(None)


def test_a_malformed_rendezvous_setting_names_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_RENDEZVOUS", "silver.before_merge@/tmp/x")
    with pytest.raises(ConfigError, match=r"<point>@<directory>#<parties>"):
        settings()


def test_the_settings_arm_the_crash_and_race_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKBOOK_CRASH_AT", "bronze.after_events")
    monkeypatch.setenv("WORKBOOK_RENDEZVOUS", f"gold.before_merge@{tmp_path}#1")
    cfg = settings()
    assert (cfg.crash_at, cfg.rendezvous) == ("bronze.after_events", ("gold.before_merge", str(tmp_path), 1))
    faults.checkpoint("bronze.after_events")  # nothing armed until the edge arms it
    faults.arm(cfg)
    try:
        with pytest.raises(InjectedCrash, match=r"bronze\.after_events"):
            faults.checkpoint("bronze.after_events")
        faults.checkpoint("gold.before_merge")  # one party: met at once, and it left its mark
        assert [p.name.split(".")[0] for p in tmp_path.iterdir()] == ["gold"]
    finally:
        faults.crash_at(None)
        faults.rendezvous_at(None)


def test_an_insert_only_merge_carries_the_guard_and_its_pruning_predicate() -> None:
    statement = commits.insert_only("x.merge", "bronze.conversion_events", "bronze_batch",
                                    ["t.event_id = s.event_id", "t.event_date IN ('2026-11-20')"], "why")
    lines = statement.sql.splitlines()
    assert lines[:3] == ["MERGE INTO bronze.conversion_events t", "USING bronze_batch s",
                         "ON t.event_id = s.event_id"]
    assert lines[3].strip() == "AND t.event_date IN ('2026-11-20')"
    assert lines[4].startswith(commits.GUARD) and lines[-1] == "WHEN NOT MATCHED THEN INSERT *"
    assert (statement.target, statement.source) == ("bronze.conversion_events", "bronze_batch")
    inline = commits.insert_only("x.offsets", "bronze.ingest_offsets", "(SELECT 1)", ["TRUE"], "why", staged=False)
    assert inline.source is None  # an inline query is not a view the run stages
