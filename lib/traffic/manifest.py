"""The manifest of a produced batch: what the broker acknowledged, per kind and per partition.

Later notebooks and tests check their counts against it; `expected()` says what each table must
gain from this batch alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.config import Settings
from lib.traffic.plan import Record, plan


@dataclass
class Manifest:
    """What one `produce` call delivered, as acknowledged by the broker."""

    topic: str
    seed: int
    #: How the batch was planned (produce's events, start and salt): enough to send it again.
    planned_events: int = 0
    start: str = ""
    salt: int = 0
    requests: int = 0  # distinct valid events
    v2_requests: int = 0  # of which in event schema v2 (with a client)
    failed_requests: int = 0
    late_events: int = 0
    duplicates: int = 0
    duplicates_cross_partition: int = 0
    invalid_events: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    records: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [first, next)
    by_operation: dict[str, int] = field(default_factory=dict)
    first_event_time: str = ""
    last_event_time: str = ""
    seconds: float = 0.0
    mode: str = "direct"

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def distinct_events(self) -> int:
        """Distinct event_ids: what Bronze keeps (valid requests plus invalid events)."""
        return self.requests + self.invalid_events

    def expected(self) -> dict[str, int]:
        """The counts later layers must reach for this batch alone."""
        return {
            "bronze.conversion_events": self.distinct_events,
            "bronze.dead_letter": self.malformed_total,
            "silver.conversion_events": self.requests,
            "silver.rejected_events": self.invalid_events,
        }

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["malformed_total"] = self.malformed_total
        doc["distinct_events"] = self.distinct_events
        doc["expected"] = self.expected()
        return doc

    def summary_rows(self) -> list[tuple[str, int]]:
        rows = [
            ("requests (distinct valid events)", self.requests),
            ("  of which failed conversions", self.failed_requests),
            ("  of which late (hours/days old)", self.late_events),
            ("  of which in schema v2 (with a client)", self.v2_requests),
            ("duplicate deliveries", self.duplicates),
            ("  of which to another partition", self.duplicates_cross_partition),
            ("invalid events (Silver rejects)", self.invalid_events),
        ]
        rows += [(f"malformed: {k}", v) for k, v in sorted(self.malformed.items())]
        rows += [(f"records in partition {p}", n) for p, n in sorted(self.per_partition.items())]
        rows.append(("records in all", self.records))
        return rows


def count_record(manifest: Manifest, record: Record, partition: int, offset: int | None) -> None:
    manifest.records += 1
    manifest.per_partition[partition] = manifest.per_partition.get(partition, 0) + 1
    if offset is not None:
        first, nxt = manifest.offsets.get(partition, (offset, offset + 1))
        manifest.offsets[partition] = (min(first, offset), max(nxt, offset + 1))
    if record.kind == "event":
        manifest.requests += 1
        manifest.failed_requests += 0 if record.success else 1
        manifest.late_events += record.late
        manifest.v2_requests += record.schema_version == 2
        op = record.operation or "?"
        manifest.by_operation[op] = manifest.by_operation.get(op, 0) + 1
    elif record.kind == "duplicate":
        manifest.duplicates += 1
        manifest.duplicates_cross_partition += record.cross_partition
    elif record.kind == "invalid":
        manifest.invalid_events += 1
    else:
        kind = record.kind.split(":", 1)[1]
        manifest.malformed[kind] = manifest.malformed.get(kind, 0) + 1


def manifests_dir(cfg: Settings) -> Path:
    return cfg.stack_home / "manifests"


def save_manifest(cfg: Settings, manifest: Manifest) -> Path:
    """Keep the manifest beside the stack's data: the topic holds the sum of all of them."""
    folder = manifests_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}.json"
    path.write_text(json.dumps(manifest.to_dict(), indent=1))
    return path


def saved_manifests(cfg: Settings, topic: str | None = None) -> list[dict[str, Any]]:
    """Every saved manifest (of `topic`, if given), oldest first: what the producers delivered."""
    docs = [json.loads(path.read_text()) for path in sorted(manifests_dir(cfg).glob("*.json"))]
    return [doc for doc in docs if topic is None or doc["topic"] == topic]


def latest_manifest(cfg: Settings, seed: int) -> dict[str, Any] | None:
    """The newest saved manifest of the events topic produced with `seed` (notebook 01's batch)."""
    docs = [doc for doc in saved_manifests(cfg, cfg.events_topic) if doc["seed"] == seed]
    return docs[-1] if docs else None


def batch_ranges(doc: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """A saved manifest's offsets as {partition: (first, next)}: the records its batch put on the topic."""
    return {int(p): (int(first), int(nxt)) for p, (first, nxt) in doc["offsets"].items()}


def batch_event_ids(doc: dict[str, Any], partitions: int) -> dict[str, set[str]]:
    """The event_ids of a saved manifest's batch, planned again from its seed: "events" (valid
    requests, Silver's) and "invalid" (Silver's rejects), whose union is what Bronze keeps, and
    "v2" (the valid requests in schema v2: the ones with a client)."""
    records = plan(doc["planned_events"], doc["seed"], datetime.fromisoformat(doc["start"]), partitions,
                   salt=doc.get("salt", 0))
    return {"events": {r.event_id for r in records if r.kind == "event" and r.event_id},
            "invalid": {r.event_id for r in records if r.kind == "invalid" and r.event_id},
            "v2": {r.event_id for r in records if r.kind == "event" and r.event_id and r.schema_version == 2}}
