"""What the maintenance job asks Iceberg to do, and freshness's rule, without a stack: the statements a
table gets (compaction of closed days only, the expiry bound a resumable Flink job moves back, S3's
listing), the orphan age the settings refuse, and when a layer counts as stale."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lib.config import settings
from lib.errors import ConfigError
from lib.jobs.freshness import Freshness
from lib.medallion.maintenance import Policy, closed_before, statements

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
POLICY = Policy(keep_snapshots=20, snapshot_age=timedelta(days=5), orphan_age=timedelta(days=3))


def names(found: list) -> list[str]:
    return [s.name for s in found]


def test_a_table_partitioned_by_day_is_compacted_on_closed_days_only() -> None:
    cfg = settings()
    by_day = statements(cfg, "bronze.conversion_events", POLICY, NOW, compact_days=True)
    assert names(by_day) == ["maintain.compact", "maintain.manifests", "maintain.expire", "maintain.orphans"]
    assert closed_before(NOW).isoformat() == "2026-12-05"  # today and yesterday stay open
    assert "where => 'event_date < \"2026-12-05\"'" in by_day[0].sql
    assert "'min-input-files', '2'" in by_day[0].sql
    flat = statements(cfg, "bronze.dead_letter", POLICY, NOW, compact_days=False)
    assert names(flat) == ["maintain.manifests", "maintain.expire", "maintain.orphans"]
    assert all(s.sql.startswith(f"CALL {cfg.catalog_name}.system.") for s in flat)


def test_snapshots_expire_by_age_and_count_but_never_from_a_resumable_stream_commit_on() -> None:
    cfg = settings()
    (expire,) = [s for s in statements(cfg, "t.x", POLICY, NOW, False) if s.name == "maintain.expire"]
    assert "older_than => TIMESTAMP '2026-12-01 10:30:00.000000'" in expire.sql and "retain_last => 20" in expire.sql
    resume = NOW - timedelta(days=9)  # a restore point's job committed its last snapshot nine days ago
    (held,) = [s for s in statements(cfg, "t.x", POLICY, NOW, False, keep_from=resume) if s.name == "maintain.expire"]
    assert "older_than => TIMESTAMP '2026-11-27 10:30:00.000000'" in held.sql
    recent = NOW - timedelta(hours=1)  # a commit younger than the age bound: the bound already keeps it
    (same,) = [s for s in statements(cfg, "t.x", POLICY, NOW, False, keep_from=recent) if s.name == "maintain.expire"]
    assert same.sql == expire.sql


def test_orphans_are_listed_through_s3fileio_in_s3_mode_and_aged_by_the_policy() -> None:
    local = next(s for s in statements(replace(settings(), warehouse="file"), "t.x", POLICY, NOW, False)
                 if s.name == "maintain.orphans")
    s3 = next(s for s in statements(replace(settings(), warehouse="s3"), "t.x", POLICY, NOW, False)
          if s.name == "maintain.orphans")
    assert "prefix_listing" not in local.sql and "prefix_listing => true" in s3.sql
    assert "older_than => TIMESTAMP '2026-12-03 10:30:00.000000'" in local.sql


@pytest.mark.parametrize("value", ["3600", "86399", "0", "soon"])
def test_an_orphan_age_under_a_day_is_refused_before_any_job_starts(monkeypatch: pytest.MonkeyPatch,
                                                                    value: str) -> None:
    monkeypatch.setenv("MAINTAIN_ORPHAN_AGE_S", value)
    with pytest.raises(ConfigError, match="MAINTAIN_ORPHAN_AGE_S"):
        settings()


def test_the_policy_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAINTAIN_KEEP_SNAPSHOTS", "3")
    monkeypatch.setenv("MAINTAIN_SNAPSHOT_AGE_S", "600")
    monkeypatch.setenv("MAINTAIN_ORPHAN_AGE_S", "86400")
    assert Policy.of(settings()) == Policy(3, timedelta(minutes=10), timedelta(days=1))


def test_a_layer_is_stale_past_twice_its_cadence_and_an_empty_one_is_not() -> None:
    hour = timedelta(hours=1)
    assert Freshness("silver", "s", NOW, 2 * hour, hour).status == "fresh"  # at the limit
    assert Freshness("silver", "s", NOW, 2 * hour + timedelta(seconds=1), hour).status == "STALE"
    assert Freshness("silver", "s", None, None, hour).status == "no data yet"
    row = Freshness("gold", "g", NOW, timedelta(days=3), timedelta(days=1)).row()
    assert (row["age_s"], row["limit_s"], row["status"]) == (3 * 86400, 2 * 86400, "STALE")
