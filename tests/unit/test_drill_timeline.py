"""A drill's timeline and its whole-table display, without a service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from lib.medallion.storage import key
from lib.workbook.timeline import Timeline, wrapped


def test_entries_read_back_from_a_service_sit_in_time_order_with_offsets_from_the_start() -> None:
    began = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    line = Timeline(began)
    line.mark("drill", "Kafka stopped", at=began + timedelta(seconds=1))
    line.mark("alerts", "alert sent", "bronze after 3 attempts", at=began + timedelta(seconds=30.25))
    line.mark("Airflow", "try 1 started", at=began + timedelta(seconds=2.5))  # read back later, happened earlier
    frame = line.frame()
    assert list(frame.what) == ["Kafka stopped", "try 1 started", "alert sent"]
    assert list(frame["at"]) == ["+1.0 s", "+2.5 s", "+30.2 s"]
    assert frame.detail.iloc[2] == "bronze after 3 attempts"


def test_a_wrapped_table_keeps_long_text_whole_as_html_and_as_text() -> None:
    long = "ValidationException: Found conflicting files that can contain records matching " + "x" * 300
    shown = wrapped(pd.DataFrame({"message": [long]}))
    assert long in shown._repr_html_() and "white-space: pre-wrap" in shown._repr_html_()
    assert long in repr(shown) and "..." not in repr(shown)


def test_storage_keys_match_icebergs_file_paths_in_both_modes() -> None:
    assert key("s3://warehouse/bronze/t/data/a.parquet") == "warehouse/bronze/t/data/a.parquet"
    assert key("file:/srv/warehouse/bronze/t/data/a.parquet") == "/srv/warehouse/bronze/t/data/a.parquet"
    assert key("/srv/warehouse/bronze/t/data/a.parquet") == "/srv/warehouse/bronze/t/data/a.parquet"


def test_an_iceberg_refusal_is_told_by_its_words_and_the_files_it_lists() -> None:
    from lib.workbook.drills import _conflict

    message = ("ValidationException: Found conflicting files that can contain records matching true: "
               "[<warehouse>/bronze/dead_letter/data/a.parquet, <warehouse>/bronze/dead_letter/data/b.parquet]")
    reason, files = _conflict(message)
    assert reason == "ValidationException: Found conflicting files that can contain records matching true"
    assert files == ["<warehouse>/bronze/dead_letter/data/a.parquet", "<warehouse>/bronze/dead_letter/data/b.parquet"]
    assert _conflict("CommitFailedException: the catalog refused") == ("CommitFailedException: the catalog refused", [])
