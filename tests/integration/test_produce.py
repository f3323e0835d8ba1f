"""The event source against the real broker: the manifest is what the topic holds."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest

from lib.config import Settings
from lib.contract.events import malformed_reason
from lib.errors import ProduceError
from lib.kafka import end_offsets, read_range
from lib.traffic.client import ServiceClient
from lib.traffic.produce import produce

pytestmark = pytest.mark.integration


def _read(cfg: Settings, start: dict[int, int], end: dict[int, int]) -> list:
    return read_range(cfg.kafka_bootstrap_servers, cfg.events_topic, start, end)


def test_topic_holds_exactly_what_the_manifest_says(live_stack: Settings) -> None:
    before = end_offsets(live_stack.kafka_bootstrap_servers, live_stack.events_topic)
    manifest = produce(live_stack, 1500, seed=11, progress=False, save=False)
    after = end_offsets(live_stack.kafka_bootstrap_servers, live_stack.events_topic)
    grown = {p: after[p] - before.get(p, 0) for p in after}
    assert grown == {p: manifest.per_partition.get(p, 0) for p in after}
    assert manifest.records == sum(grown.values())
    records = _read(live_stack, before, after)
    assert len(records) == manifest.records
    malformed = [r for r in records if malformed_reason(r.value) is not None]
    assert len(malformed) == manifest.malformed_total
    ids = Counter(json.loads(r.value)["event_id"] for r in records if malformed_reason(r.value) is None)
    assert len(ids) == manifest.distinct_events
    assert sum(ids.values()) - len(ids) == manifest.duplicates
    partitions_of = {}
    for r in records:
        if malformed_reason(r.value) is None:
            partitions_of.setdefault(json.loads(r.value)["event_id"], set()).add(r.partition)
    assert sum(len(p) - 1 for p in partitions_of.values()) == manifest.duplicates_cross_partition


def test_service_emits_one_event_per_request_on_the_user_key(live_stack: Settings) -> None:
    before = end_offsets(live_stack.kafka_bootstrap_servers, live_stack.events_topic)
    user = f"itest-{uuid.uuid4().hex[:6]}"
    asks = [("to_roman", "1994"), ("from_roman", "XLII"), ("to_roman", "0"), ("from_roman", "IIII")]
    with ServiceClient(live_stack) as client:
        answers = [client.ask(operation, text, user) for operation, text in asks]
    assert [s for s, _ in answers] == [200, 200, 400, 400]
    deadline = time.monotonic() + 20
    mine: list = []
    while len(mine) < 4 and time.monotonic() < deadline:
        after = end_offsets(live_stack.kafka_bootstrap_servers, live_stack.events_topic)
        mine = [r for r in _read(live_stack, before, after) if r.key == user.encode()]
        time.sleep(0.3)
    events = [json.loads(r.value) for r in mine]
    assert [e["event_id"] for e in events] == [b["event_id"] for _, b in answers]
    assert [e["success"] for e in events] == [True, True, False, False]
    assert events[0]["output"] == "MCMXCIV" and events[2]["error"].startswith("0 is out of range")
    assert len({r.partition for r in mine}) == 1


def test_unreachable_broker_is_a_clear_error(live_stack: Settings) -> None:
    nowhere = replace(live_stack, kafka_bootstrap_servers="127.0.0.1:1")
    began = time.monotonic()
    expected = r"Kafka at 127.0.0.1:1 is unreachable .* after 3 attempts; nothing was sent"
    with pytest.raises(ProduceError, match=expected):
        produce(nowhere, 10, seed=1, progress=False, save=False)
    assert time.monotonic() - began < 40
