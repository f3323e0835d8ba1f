"""The Flink stream: the events topic through event time, dedup and checkpoints into Iceberg.

One Flink SQL job (a statement set, so one Kafka source feeds every sink):

    Kafka (raw bytes) -> malformed_reason (the contract's rule on the JVM) -+-> bronze.dead_letter_stream
                                                                   |
        event time + watermark (event_time - WATERMARK_DELAY)      v
        dedup: first row per event_id, keyed state with a TTL -> bronze.conversion_events_stream (Iceberg)
                                                              -> console (the taskmanager's .out)
                                                              -> on time: 1-minute tumbling counts per user
                                                              -> behind the watermark: bronze.late_events_stream

Iceberg sinks commit on checkpoints (exactly-once: a restore rewinds Kafka to the checkpointed
offsets and the dedup state to what it was, and discards files written since). The job reads
from the group's committed offsets, or from the earliest ones the first time.

event_time is read in the contract's format (ISO-8601 with milliseconds and an offset, as
lib.contract.events.iso writes it). An event whose event_time does not parse still lands in the events
table (with a null event_time, as in Spark's Bronze; Silver rejects it) but has no place in a
window: its stream time is the Kafka timestamp, and it is counted in neither windows nor late.

An event cannot happen after it was sent: stream time is event_time capped at the record's Kafka
timestamp. Without the cap, one client with a clock an hour fast would push the watermark an
hour ahead, and every honest event after it would be late.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from lib.config import Settings, is_topic_name
from lib.errors import ParameterError

JOB_NAME = "roman-stream"
CONSOLE_TAG = "roman-stream"
WINDOWS_TAG = "roman-minute"
STREAM_EVENTS = "bronze.conversion_events_stream"
STREAM_DEAD_LETTER = "bronze.dead_letter_stream"
STREAM_LATE = "bronze.late_events_stream"
STREAM_WINDOWS = "bronze.user_minute_counts_stream"
STREAM_TABLES = (STREAM_EVENTS, STREAM_DEAD_LETTER, STREAM_LATE, STREAM_WINDOWS)

_ISO_MILLIS = "yyyy-MM-dd''T''HH:mm:ss.SSSXXX"
_DURATION = re.compile(r"[1-9]\d*\s*(ms|s|min|h|d)")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StreamJob:
    """The job's parameters: what a learner changes to see watermarks and state at work."""

    name: str = JOB_NAME
    topic: str = ""  # empty: EVENTS_TOPIC
    group_id: str = "roman-stream"
    watermark_delay_s: int = 5  # bounded out-of-orderness
    # A partition with no records for this long stops holding the watermark back (0: never).
    idle_timeout_s: int = 5
    window_minutes: int = 1
    dedup_ttl: str = "1 h"  # how long an event_id is remembered
    checkpoint_interval: str = "5s"
    parallelism: int = 1
    # Every sink replaced by Flink's blackhole connector: the same reading, classifying and dedup with
    # nothing written, the throughput benchmark's baseline for what the sinks cost.
    blackhole: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.watermark_delay_s < 0 or self.idle_timeout_s < 0:
            problems.append("watermark_delay_s and idle_timeout_s must be >= 0 (seconds)")
        if self.window_minutes < 1 or self.parallelism < 1:
            problems.append("window_minutes and parallelism must be >= 1")
        for name in ("dedup_ttl", "checkpoint_interval"):
            value = getattr(self, name)
            if not _DURATION.fullmatch(str(value)):
                problems.append(f"{name}={value!r} is not a duration; write it like '5s', '10 min', '1 h'")
        if not (_NAME.fullmatch(self.name) and _NAME.fullmatch(self.group_id)):
            problems.append("name and group_id may hold letters, digits, '.', '_' and '-' only")
        if self.topic and not is_topic_name(self.topic):
            problems.append(f"topic={self.topic!r} is not a legal Kafka topic name: 1 to 249 letters, digits, '.', "
                            "'_' or '-' (not '.' or '..' alone)")
        if problems:
            raise ParameterError("StreamJob: " + "; ".join(problems))

    def config(self) -> dict[str, str]:
        """Job settings beyond the submission defaults (see lib.stream.lifecycle.client_config)."""
        return {
            "table.local-time-zone": "UTC",
            "table.exec.state.ttl": self.dedup_ttl,
            "table.exec.source.idle-timeout": f"{self.idle_timeout_s} s" if self.idle_timeout_s else "0 ms",
            # One optimisation block per shared view: the dedup and the classifier run once,
            # whatever columns each sink needs (else each sink gets its own copy of the state).
            "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.min-pause": "1s",
        }


def statements(cfg: Settings, job: StreamJob) -> list[str]:
    """The job as Flink SQL: catalog, tables, views and one statement set."""
    topic = job.topic or cfg.events_topic
    ts = "TIMESTAMP_LTZ(6)"
    file_io = "".join(f", '{key}' = '{value}'" for key, value in cfg.file_io_properties.items())
    # Flink's computed columns cannot refer to each other, so stream_time repeats this expression.
    parsed = f"TO_TIMESTAMP_LTZ(JSON_VALUE(CAST(`value` AS STRING), '$.event_time'), '{_ISO_MILLIS}')"
    target = {name: f"{cfg.catalog_name}.{name}" for name in STREAM_TABLES} | {"console": "console",
                                                                              "console_windows": "console_windows"}
    sinks = _blackholes(cfg, target) if job.blackhole else {}
    target |= {name: f"blackhole_{name.replace('.', '_')}" for name in sinks}
    return [
        f"""CREATE TEMPORARY TABLE kafka_events (
            `value` BYTES,
            kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
            kafka_partition INT METADATA FROM 'partition' VIRTUAL,
            kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
            kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
            event_time AS {parsed},
            stream_time AS COALESCE(LEAST({parsed}, kafka_timestamp), kafka_timestamp),
            arrival AS PROCTIME(),
            WATERMARK FOR stream_time AS stream_time - INTERVAL '{int(job.watermark_delay_s)}' SECOND
        ) WITH (
            'connector' = 'kafka', 'topic' = '{topic}', 'format' = 'raw',
            'properties.bootstrap.servers' = '{cfg.kafka_bootstrap_servers}',
            'properties.group.id' = '{job.group_id}',
            'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest',
            'scan.topic-partition-discovery.interval' = '30 s'
        )""",
        # The contract's rule (lib/contract/events.py) on the JVM, proven equal to it (jars/rules): the records
        # never leave the taskmanager for a Python worker.
        "CREATE TEMPORARY SYSTEM FUNCTION malformed_reason AS 'workbook.rules.MalformedReason' LANGUAGE JAVA",
        "CREATE TEMPORARY SYSTEM FUNCTION as_text AS 'workbook.rules.AsText' LANGUAGE JAVA",
        f"""CREATE CATALOG {cfg.catalog_name} WITH ('type' = 'iceberg', 'catalog-type' = 'rest',
            'uri' = '{cfg.iceberg_rest_uri}', 'warehouse' = '{cfg.iceberg_warehouse}'{file_io})""",
        f"CREATE DATABASE IF NOT EXISTS {cfg.catalog_name}.bronze",
        _iceberg_table(cfg, STREAM_EVENTS, f"""event_id STRING NOT NULL, event_time {ts}, event_date DATE,
            user_id STRING, payload STRING NOT NULL, kafka_topic STRING NOT NULL, kafka_partition INT NOT NULL,
            kafka_offset BIGINT NOT NULL, kafka_timestamp {ts}, watermark_at_arrival {ts},
            ingested_at {ts} NOT NULL""", partition="event_date"),
        _iceberg_table(cfg, STREAM_DEAD_LETTER, f"""kafka_topic STRING NOT NULL, kafka_partition INT NOT NULL,
            kafka_offset BIGINT NOT NULL, kafka_timestamp {ts}, payload BYTES, payload_text STRING,
            reason STRING NOT NULL, ingested_at {ts} NOT NULL"""),
        _iceberg_table(cfg, STREAM_LATE, f"""event_id STRING NOT NULL, user_id STRING, event_time {ts} NOT NULL,
            watermark_at_arrival {ts} NOT NULL, behind_s INT NOT NULL, kafka_partition INT NOT NULL,
            kafka_offset BIGINT NOT NULL, ingested_at {ts} NOT NULL"""),
        _iceberg_table(cfg, STREAM_WINDOWS, f"""window_start {ts} NOT NULL, window_end {ts} NOT NULL,
            user_id STRING NOT NULL, events BIGINT NOT NULL, failed BIGINT NOT NULL,
            emitted_at {ts} NOT NULL"""),
        f"""CREATE TEMPORARY TABLE console (event_id STRING, event_time {ts}, user_id STRING, operation STRING,
            `input` STRING, `output` STRING, kafka_partition INT, kafka_offset BIGINT, printed_at {ts})
            WITH ('connector' = 'print', 'print-identifier' = '{CONSOLE_TAG}')""",
        f"""CREATE TEMPORARY TABLE console_windows (window_start {ts}, window_end {ts}, user_id STRING,
            events BIGINT) WITH ('connector' = 'print', 'print-identifier' = '{WINDOWS_TAG}')""",
        # Every record, classified once by the contract's rule.
        """CREATE TEMPORARY VIEW classified AS
            SELECT `value`, CAST(`value` AS STRING) AS payload, malformed_reason(`value`) AS reason,
                   kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, event_time, stream_time, arrival
            FROM kafka_events""",
        # First delivery per event_id (processing-time order keeps the output append-only); the
        # seen event_ids are keyed state that expires after table.exec.state.ttl.
        """CREATE TEMPORARY VIEW distinct_events AS
            SELECT * FROM (
                SELECT JSON_VALUE(payload, '$.event_id') AS event_id, JSON_VALUE(payload, '$.user_id') AS user_id,
                       JSON_VALUE(payload, '$.operation') AS operation, JSON_VALUE(payload, '$.input') AS `input`,
                       JSON_VALUE(payload, '$.output') AS `output`, JSON_VALUE(payload, '$.success') AS success,
                       payload, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, event_time, stream_time,
                       CURRENT_WATERMARK(stream_time) AS watermark_at_arrival,
                       ROW_NUMBER() OVER (PARTITION BY JSON_VALUE(payload, '$.event_id') ORDER BY arrival) AS nth
                FROM classified WHERE reason IS NULL)
            WHERE nth = 1""",
        """CREATE TEMPORARY VIEW on_time AS
            SELECT * FROM distinct_events
            WHERE event_time IS NOT NULL AND (watermark_at_arrival IS NULL OR stream_time > watermark_at_arrival)""",
        f"""CREATE TEMPORARY VIEW minute_counts AS
            SELECT CAST(window_start AS TIMESTAMP_LTZ(3)) AS window_start,
                   CAST(window_end AS TIMESTAMP_LTZ(3)) AS window_end, user_id,
                   COUNT(*) AS events, COUNT(*) FILTER (WHERE success = 'false') AS failed
            FROM TABLE(TUMBLE(TABLE on_time, DESCRIPTOR(stream_time), INTERVAL '{int(job.window_minutes)}' MINUTE))
            GROUP BY window_start, window_end, user_id""",
        *sinks.values(),
        f"""EXECUTE STATEMENT SET BEGIN
            INSERT INTO {target[STREAM_EVENTS]}
                SELECT event_id, event_time, CAST(event_time AS DATE), user_id, payload, kafka_topic,
                       kafka_partition, kafka_offset, kafka_timestamp, watermark_at_arrival, CURRENT_TIMESTAMP
                FROM distinct_events;
            INSERT INTO {target['console']}
                SELECT event_id, event_time, user_id, operation, `input`, `output`, kafka_partition, kafka_offset,
                       CURRENT_TIMESTAMP
                FROM distinct_events;
            INSERT INTO {target[STREAM_LATE]}
                SELECT event_id, user_id, event_time, watermark_at_arrival,
                       TIMESTAMPDIFF(SECOND, stream_time, watermark_at_arrival), kafka_partition, kafka_offset,
                       CURRENT_TIMESTAMP
                FROM distinct_events WHERE event_time IS NOT NULL AND stream_time <= watermark_at_arrival;
            INSERT INTO {target[STREAM_WINDOWS]}
                SELECT window_start, window_end, user_id, events, failed, CURRENT_TIMESTAMP FROM minute_counts;
            INSERT INTO {target['console_windows']} SELECT window_start, window_end, user_id, events FROM minute_counts;
            INSERT INTO {target[STREAM_DEAD_LETTER]} (kafka_topic, kafka_partition, kafka_offset,
                    kafka_timestamp, payload, payload_text, reason, ingested_at)
                SELECT kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, `value`, as_text(`value`), reason,
                       CURRENT_TIMESTAMP
                FROM classified WHERE reason IS NOT NULL;
        END""",
    ]


_SUBJECT = re.compile(
    r"(?:CREATE (?:TEMPORARY )?(?:SYSTEM )?(\w+) (?:IF NOT EXISTS )?([\w.`]+))|(EXECUTE STATEMENT SET)")


def named_statements(cfg: Settings, job: StreamJob) -> dict[str, str]:
    """The job's statements by what they create ("view distinct_events"), formatted for reading."""
    named = {}
    for sql in statements(cfg, job):
        found = _SUBJECT.match(sql)
        name = (found.group(3) or f"{found.group(1).lower()} {found.group(2)}") if found else sql[:40]
        first, _, rest = sql.partition("\n")
        named[name.lower()] = first + ("\n" + textwrap.dedent(rest) if rest else "")
    return named


def _blackholes(cfg: Settings, target: dict[str, str]) -> dict[str, str]:
    """A blackhole table per sink, with the sink's own columns (the job's SQL is otherwise unchanged)."""
    return {name: f"CREATE TEMPORARY TABLE blackhole_{name.replace('.', '_')} WITH ('connector' = 'blackhole') "
                  f"LIKE {table} (EXCLUDING ALL)" for name, table in target.items()}


def _iceberg_table(cfg: Settings, name: str, columns: str, partition: str | None = None) -> str:
    """CREATE TABLE IF NOT EXISTS in the REST catalog: the job owns its tables' schemas."""
    by = f"PARTITIONED BY ({partition}) " if partition else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {cfg.catalog_name}.{name} ({columns}) {by}"
        "WITH ('format-version' = '2', 'write.distribution-mode' = 'none')"
    )
