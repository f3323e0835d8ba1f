"""Spark UDFs that apply the event contract's Python rules (lib/events.py) to whole batches.

One rule, one implementation: Bronze and Silver call the same functions the unit tests check.
No `from __future__ import annotations` here: pandas_udf reads these type hints at run time.
"""

import pandas as pd
from pyspark.sql.functions import pandas_udf

from lib.events import malformed_reason, validation_reason


@pandas_udf("string")
def malformed_udf(values: pd.Series) -> pd.Series:
    """Why each raw Kafka value is malformed (a dead letter), or null for an event."""
    return values.map(lambda v: malformed_reason(None if v is None else bytes(v)))


@pandas_udf("string")
def validation_udf(payloads: pd.Series) -> pd.Series:
    """Why each Bronze payload fails Silver's validation, or null when it is valid."""
    return payloads.map(validation_reason)
