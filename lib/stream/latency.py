"""How long an event takes through the stream, leg by leg, from timestamps the rows carry.

Three clocks meet in a stream row: `event_time` (when the request happened, as the client says),
`kafka_timestamp` (the record's Kafka timestamp: the topic keeps CreateTime, so it is stamped by the
producer as it hands the record to Kafka) and `ingested_at` (stamped by the job as it writes the row,
to the console and to the Iceberg writer alike). A row becomes readable in Iceberg only when the
checkpoint that carries its file commits: that time is the committing snapshot's, found here from
the table's manifest entries (each live data file names the snapshot that added it).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow.parquet as pq

from lib.config import Settings
from lib.medallion.catalog import catalog

#: The legs, in the order an event meets them, as (name, from column, to column).
LEGS = (
    ("request -> Kafka", "event_time", "kafka_timestamp"),
    ("Kafka -> sink", "kafka_timestamp", "ingested_at"),
    ("Kafka -> readable in Iceberg", "kafka_timestamp", "visible_at"),
    ("request -> readable in Iceberg", "event_time", "visible_at"),
)


def visible_at(cfg: Settings, table_name: str, event_ids: set[str], since: datetime) -> pd.Series:
    """event_id -> when the commit that made it readable happened, for the data files added since `since`."""
    table = catalog(cfg).load_table(table_name)
    committed = {s.snapshot_id: s.timestamp_ms for s in table.snapshots()}
    cutoff = since.timestamp() * 1000
    entries = table.inspect.entries().to_pylist()
    found: dict[str, int] = {}
    for entry in entries:
        at = committed.get(entry["snapshot_id"])
        if at is None or at < cutoff:
            continue
        with table.io.new_input(entry["data_file"]["file_path"]).open() as stream:
            ids = pq.read_table(stream, columns=["event_id"]).column("event_id").to_pylist()
        for event_id in ids:
            if event_id in event_ids:
                found[event_id] = min(at, found.get(event_id, at))
    return pd.to_datetime(pd.Series(found, name="visible_at", dtype="int64"), unit="ms", utc=True)


def legs(rows: pd.DataFrame) -> pd.DataFrame:
    """Seconds per leg for each row (columns named by LEGS); rows need the timestamps LEGS name."""
    return pd.DataFrame({name: (rows[end] - rows[start]).dt.total_seconds() for name, start, end in LEGS},
                        index=rows.index)


def summary(seconds: pd.DataFrame) -> pd.DataFrame:
    """p50, p90, p99 and max per leg, in seconds, with the count measured."""
    table = seconds.quantile([0.5, 0.9, 0.99]).T
    table.columns = ["p50 (s)", "p90 (s)", "p99 (s)"]
    table["max (s)"] = seconds.max()
    table.insert(0, "events", seconds.count())
    return table.round(2)
