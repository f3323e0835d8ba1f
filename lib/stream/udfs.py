"""Python functions the Flink job calls, run by the taskmanager's Python worker in .venv-flink.

They apply the event contract's own rule (lib/contract/events.py), so the stream sets aside exactly the
records Spark's Bronze sends to its dead letter table, with the same reason.
"""

from pyflink.table import DataTypes
from pyflink.table.udf import udf

from lib.contract.events import as_text as _as_text
from lib.contract.events import malformed_reason as _malformed_reason


@udf(result_type=DataTypes.STRING())
def malformed_reason(value: bytes | None) -> str | None:
    """Why a raw Kafka value is malformed, or None for an event with a usable event_id."""
    return _malformed_reason(None if value is None else bytes(value))


@udf(result_type=DataTypes.STRING())
def as_text(value: bytes | None) -> str | None:
    """A raw Kafka value as displayable UTF-8 text, for the dead letters' text column."""
    return _as_text(None if value is None else bytes(value))
