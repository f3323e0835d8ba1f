"""The performance goals on the 2-core machine: each with the figure measured when it was set, now and met.

`throughput`, `stream` and `service` each measure some of the rows and print them as one table (figure,
when set, now, goal, met); their JSON keeps the same rows under "goals". A goal compares one number with
a bound; the "when set" column is the figure it was set against, so a reader sees the distance travelled.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from tabulate import tabulate


@dataclass(frozen=True)
class Goal:
    """One row: what is measured, in which unit, the bound it must keep and the figure when it was set."""

    figure: str
    unit: str
    bound: float
    at_most: bool  # True: the figure must not exceed the bound; False: it must reach it
    when_set: str

    def met(self, value: float) -> bool:
        compare: Callable[[float, float], bool] = operator.le if self.at_most else operator.ge
        return compare(value, self.bound)

    def row(self, value: float, shown: str | None = None) -> dict[str, object]:
        """The row as printed and as kept in the JSON."""
        bound = f"{'<=' if self.at_most else '>='} {self.bound:,g} {self.unit}"
        return {"figure": self.figure, "when set": self.when_set, "now": shown or f"{value:,.4g} {self.unit}",
                "value": value, "goal": bound, "met": self.met(value)}


FLINK_BACKLOG = Goal("Flink draining a 1M backlog with its sinks", "records/s", 25_000, False,
                     "15.9k records/s (blackhole 21.0k)")
BRONZE_OVER_APPEND = Goal("Bronze run / plain append of the same Kafka range, 1M", "x", 3.0, True,
                          "5.5x (31.0 s / 5.6 s)")
CLI_TOTAL = Goal("bronze + silver + gold through `python -m lib run`, 1M requests", "s", 100, True,
                 "138 s")
PEAK_RSS = Goal("peak RSS, stack + driver, during the 1M runs", "GiB", 4.5, True, "5.6 GiB")
VISIBLE_P99 = Goal("event -> visible in Iceberg, p99 at 1k records/s", "s", 2.5, True, "5.2 s")
SERVICE_RATE = Goal("service: acknowledged requests/s (64 connections)", "requests/s", 6_000, False,
                    "5.5-6.3k/s")
SERVICE_P99 = Goal("service: p99 latency (64 connections)", "ms", 50, True, "45-55 ms")


def print_goals(rows: list[dict[str, object]]) -> None:
    """The rows as a table: figure, when set, now, goal, met."""
    print(tabulate([(r["figure"], r["when set"], r["now"], r["goal"], "yes" if r["met"] else "NO") for r in rows],
                   headers=["figure", "when the goal was set", "now", "goal", "met"]))
