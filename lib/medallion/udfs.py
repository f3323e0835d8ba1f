"""Spark UDFs that apply the event contract's Python rules (lib/contract/events.py) to whole batches.

One rule, one implementation: Bronze and Silver call the same functions the unit tests check.
Spark 4 declares a pandas UDF only once a session runs, so each is built on first use and kept.
No `from __future__ import annotations` here: pandas_udf reads the type hints at run time.
"""

from functools import cache

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

from lib.contract.events import as_text, malformed_reason, validation_reason


def _malformed(values: pd.Series) -> pd.Series:
    """Why each raw Kafka value is malformed (a dead letter), or null for an event."""
    return values.map(lambda v: malformed_reason(None if v is None else bytes(v)))


def _text(values: pd.Series) -> pd.Series:
    """Each raw Kafka value as displayable UTF-8 text (lib.contract.events.as_text)."""
    return values.map(lambda v: as_text(None if v is None else bytes(v)))


def _validation(payloads: pd.Series) -> pd.Series:
    """Why each Bronze payload fails Silver's validation, or null when it is valid."""
    return payloads.map(validation_reason)


@cache
def malformed_udf():
    """The malformed rule as a pandas UDF over the raw `value` column (binary -> reason string)."""
    return pandas_udf(_malformed, "string")


@cache
def text_udf():
    """The dead letters' text rendering as a pandas UDF over the raw `value` column (binary -> string)."""
    return pandas_udf(_text, "string")


@cache
def validation_udf():
    """Silver's validation rule as a pandas UDF over the `payload` column (string -> reason string)."""
    return pandas_udf(_validation, "string")


def register_udfs(spark: SparkSession) -> None:
    """Make the rules callable from SQL in this session: malformed_reason(value), payload_text(value),
    validation_reason(payload). The layers' statements call them by these names."""
    spark.udf.register("malformed_reason", malformed_udf())
    spark.udf.register("payload_text", text_udf())
    spark.udf.register("validation_reason", validation_udf())
