from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from lib.contract.events import CLIENTS, fields, malformed_reason, validation_reason
from lib.contract.roman import convert
from lib.traffic.plan import TrafficShape, plan

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_same_seed_same_records_other_seed_other_records() -> None:
    a, b, c = plan(500, 1, START, 3), plan(500, 1, START, 3), plan(500, 2, START, 3)
    assert [(r.key, r.value, r.partition) for r in a] == [(r.key, r.value, r.partition) for r in b]
    assert [r.value for r in a] != [r.value for r in c]


def test_every_kind_is_present_and_counted() -> None:
    records = plan(2000, 5, START, 3)
    kinds = Counter(r.kind.split(":")[0] for r in records)
    assert kinds["event"] == 2000
    assert kinds["duplicate"] == 100  # 5 %
    assert kinds["invalid"] == 20
    assert kinds["malformed"] == 20
    assert sum(r.cross_partition for r in records) > 0
    assert len({r.event_id for r in records if r.kind == "event"}) == 2000


def test_events_follow_the_schema_and_answers_are_right() -> None:
    for record in plan(300, 3, START, 3):
        if record.kind != "event":
            continue
        doc = json.loads(record.value)
        assert doc["schema_version"] == record.schema_version in (1, 2)
        assert tuple(doc) == fields(record.schema_version)
        assert validation_reason(record.value) is None
        assert record.key == doc["user_id"].encode()
        datetime.fromisoformat(doc["event_time"])
        if doc["success"]:
            assert doc["output"] == convert(doc["operation"], doc["input"]) and doc["error"] is None
        else:
            assert doc["output"] is None and doc["error"]


def test_duplicates_repeat_the_original_payload_later() -> None:
    records = plan(1000, 9, START, 3)
    first_seen: dict[str, int] = {}
    for position, record in enumerate(records):
        if record.kind == "event":
            first_seen[record.event_id] = position
    for position, record in enumerate(records):
        if record.kind == "duplicate":
            original = records[first_seen[record.event_id]]
            assert record.value == original.value
            assert position > first_seen[record.event_id]
            assert record.cross_partition == (record.partition != original.partition)


def test_late_events_are_hours_behind_and_users_are_skewed() -> None:
    records = [r for r in plan(3000, 4, START, 3) if r.kind == "event"]
    late = [r for r in records if r.late]
    assert 0.03 < len(late) / len(records) < 0.09
    for record in late:
        assert datetime.fromisoformat(json.loads(record.value)["event_time"]) < START + timedelta(hours=1) - timedelta(
            hours=1, minutes=59)
    per_user = Counter(r.key for r in records).most_common()
    assert per_user[0][1] > 5 * per_user[-1][1]


def test_malformed_records_are_recognised_as_such() -> None:
    records = plan(500, 6, START, 3)
    for record in records:
        reason = malformed_reason(record.value)
        assert (reason is not None) == record.kind.startswith("malformed"), (record.kind, record.value)


@pytest.mark.parametrize("events", [0, -5, 2.5, "10", True])
def test_bad_counts_are_refused(events: object) -> None:
    with pytest.raises(ValueError, match="positive whole number"):
        plan(events, 1, START, 3)  # type: ignore[arg-type]


def test_a_salt_keeps_the_batch_and_changes_only_its_event_ids() -> None:
    a, b = plan(400, 9, START, 3), plan(400, 9, START, 3, salt=12345)
    assert [(r.kind, r.key, r.partition) for r in a] == [(r.kind, r.key, r.partition) for r in b]
    ids_a = {r.event_id for r in a if r.event_id}
    ids_b = {r.event_id for r in b if r.event_id}
    assert len(ids_a) == len(ids_b) and not ids_a & ids_b
    strip = [(json.loads(r.value) | {"event_id": None}) for r in a if r.kind == "event"]
    assert strip == [(json.loads(r.value) | {"event_id": None}) for r in b if r.kind == "event"]


def test_a_batch_mixes_both_schema_versions_and_the_share_changes_nothing_else() -> None:
    records = [r for r in plan(2000, 5, START, 3) if r.kind == "event"]
    v2 = [json.loads(r.value) for r in records if r.schema_version == 2]
    assert 0.25 < len(v2) / len(records) < 0.35  # the default share, 0.3
    assert {d["client"] for d in v2} == set(CLIENTS)
    only_v1 = [r for r in plan(2000, 5, START, 3, TrafficShape(v2_share=0.0)) if r.kind == "event"]
    assert all(r.schema_version == 1 for r in only_v1)
    # the versions have a random stream of their own: the same requests, users, times and event_ids
    assert [r.event_id for r in only_v1] == [r.event_id for r in records]
    assert [json.loads(r.value)["input"] for r in only_v1] == [json.loads(r.value)["input"] for r in records]
