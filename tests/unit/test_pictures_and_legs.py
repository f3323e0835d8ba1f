"""The notebooks' diagrams, the stream's latency legs and a day of the schedule, without a service."""

from __future__ import annotations

from datetime import UTC, datetime

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from lib.errors import ConfigError
from lib.jobs.registry import day_of_intervals
from lib.stream import latency
from lib.workbook.diagrams import DIAGRAMS, draw


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_each_diagram_draws_every_box_and_arrow(name: str) -> None:
    diagram = DIAGRAMS[name]
    assert all(a in diagram.boxes and b in diagram.boxes for a, b, _ in diagram.arrows)
    fig = draw(name)
    ax = fig.axes[0]
    assert len(ax.patches) == len(diagram.boxes)  # one rounded box each
    assert len([t for t in ax.texts if t.get_text()]) >= len(diagram.boxes)


def test_an_unknown_diagram_is_refused_with_the_names() -> None:
    with pytest.raises(ConfigError, match="no diagram 'nope'; the diagrams are bronze, gold"):
        draw("nope")


def test_latency_legs_are_seconds_between_the_rows_clocks() -> None:
    t = pd.Timestamp("2026-12-01T10:00:00Z")
    rows = pd.DataFrame({"event_time": [t], "kafka_timestamp": [t + pd.Timedelta("1.5s")],
                         "ingested_at": [t + pd.Timedelta("1.7s")], "visible_at": [t + pd.Timedelta("6s")]})
    legs = latency.legs(rows).iloc[0].to_dict()
    assert legs == pytest.approx({"request -> Kafka": 1.5, "Kafka -> sink": 0.2, "Kafka -> readable in Iceberg": 4.5,
                                  "request -> readable in Iceberg": 6.0})
    table = latency.summary(latency.legs(pd.concat([rows] * 3)))
    assert list(table.columns) == ["events", "p50 (s)", "p90 (s)", "p99 (s)", "max (s)"]
    assert table.loc["Kafka -> sink", "events"] == 3


def test_a_day_of_the_schedule_is_96_bronze_24_silver_one_gold_one_maintenance() -> None:
    runs = pd.Series([name for name, _ in day_of_intervals(datetime(2026, 11, 19, 13, 5, tzinfo=UTC))])
    assert runs.value_counts().to_dict() == {"bronze": 96, "silver": 24, "gold": 1, "maintain": 1}
