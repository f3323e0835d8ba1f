"""The notebooks' flow diagrams, drawn by matplotlib so every viewer shows the same picture.

Markdown diagrams (Mermaid) render in JupyterLab but arrive as raw text on GitHub's and GitLab's notebook
views and on nbviewer, where reviewers read executed notebooks; a figure is a PNG in the cell's output.
Each diagram is data: boxes placed on a grid (column, row) and arrows between them, optionally labelled.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from lib.errors import ConfigError

_COL, _ROW, _W, _H = 3.4, 1.15, 2.2, 0.8  # grid pitch and box size, in data units

_KINDS = {"service": "#dbe9f6", "kafka": "#fde2c8", "job": "#e3f1dc", "table": "#efe3f5", "step": "#f2f2f2"}


@dataclass
class Diagram:
    """Boxes {key: (label, column, row, kind)} and arrows (from, to, label)."""

    title: str
    boxes: dict[str, tuple[str, float, float, str]]
    arrows: list[tuple[str, str, str]] = field(default_factory=list)

    def draw(self) -> plt.Figure:
        cols = max(c for _, c, _, _ in self.boxes.values()) + 1
        rows = max(r for _, _, r, _ in self.boxes.values()) + 1
        fig, ax = plt.subplots(figsize=(max(6.0, cols * 2.8), rows * 0.95 + 0.6))
        for label, col, row, kind in self.boxes.values():
            x, y = col * _COL, -row * _ROW
            ax.add_patch(FancyBboxPatch((x - _W / 2, y - _H / 2), _W, _H, boxstyle="round,pad=0.02,rounding_size=0.12",
                                        facecolor=_KINDS[kind], edgecolor="#555555", linewidth=1))
            lines = [part for line in label.split("\n") for part in textwrap.wrap(line, 24, break_long_words=False)]
            ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=8.5)
        for start, end, label in self.arrows:
            (x0, y0), (x1, y1) = self._anchor(start, end), self._anchor(end, start)
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "#333333", "linewidth": 1.1, "shrinkA": 2,
                                    "shrinkB": 2})
            if label:
                ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.09, label, ha="center", va="bottom", fontsize=7.5,
                        color="#1f4e79", bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.85})
        ax.set_xlim(-_COL / 2, (cols - 0.5) * _COL)
        ax.set_ylim(-(rows - 0.5) * _ROW, _ROW / 2)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(self.title, fontsize=10)
        fig.tight_layout()
        return fig

    def _anchor(self, key: str, towards: str) -> tuple[float, float]:
        """Where an arrow leaves (or meets) a box: the side that faces the other box."""
        _, col, row, _ = self.boxes[key]
        _, other_col, other_row, _ = self.boxes[towards]
        x, y = col * _COL, -row * _ROW
        if other_col > col:
            return x + _W / 2, y
        if other_col < col:
            return x - _W / 2, y
        return x, y - _H / 2 if other_row > row else y + _H / 2


DIAGRAMS = {
    "platform": Diagram("the platform: every request an event in Kafka, read by the stream and by the batch layers", {
        "client": ("client", 0, 0, "service"),
        "service": ("Roman Numeral Service (FastAPI)", 1, 0, "service"),
        "generator": ("traffic generator (notebook 01)", 1, 1, "service"),
        "kafka": ("Kafka topic roman-conversions, 3 partitions", 2, 0.5, "kafka"),
        "flink": ("Flink stream (02): watermarks, dedup, windows", 3, 0, "job"),
        "bronze": ("Bronze (03), Spark every 15 min", 3, 1, "job"),
        "silver": ("Silver (04), Spark hourly", 4, 1, "job"),
        "gold": ("Gold (05), Spark daily", 5, 1, "job"),
        "stream_tables": ("Iceberg stream tables", 4, 0, "table"),
    }, [("client", "service", "HTTP"), ("service", "kafka", "acks=all"), ("generator", "kafka", "idempotent"),
        ("kafka", "flink", ""), ("kafka", "bronze", ""), ("flink", "stream_tables", "per checkpoint"),
        ("bronze", "silver", "MERGE"), ("silver", "gold", "MERGE")]),
    "stream": Diagram("the Flink job: one Kafka source feeds every sink", {
        "kafka": ("Kafka roman-conversions", 0, 1, "kafka"),
        "classified": ("classified: malformed_reason (JVM)", 1, 1, "step"),
        "dead": ("bronze.\ndead_letter_stream", 2, 2.2, "table"),
        "watermark": ("event time + watermark", 2, 1, "step"),
        "dedup": ("distinct_events: dedup by event_id (keyed state, TTL)", 3, 1, "step"),
        "events": ("bronze.\nconversion_events_stream", 4, 0, "table"),
        "console": ("console (taskmanager stdout)", 4, 0.9, "service"),
        "windows": ("minute_counts: 1-minute windows", 4, 1.8, "step"),
        "late": ("bronze.\nlate_events_stream", 4, 2.7, "table"),
        "counts": ("bronze.\nuser_minute_counts_stream", 5, 1.8, "table"),
    }, [("kafka", "classified", ""), ("classified", "dead", "malformed"), ("classified", "watermark", "events"),
        ("watermark", "dedup", ""), ("dedup", "events", ""), ("dedup", "console", ""), ("dedup", "windows", "on time"),
        ("dedup", "late", "behind the watermark"), ("windows", "counts", "")]),
    "bronze": Diagram("a Bronze run: a range of offsets in, each event once, the offsets last", {
        "kafka": ("Kafka: per partition [committed, end)", 0, 0.5, "kafka"),
        "classify": ("classify each record", 1, 0.5, "step"),
        "dedup": ("ROW_NUMBER() over event_id = 1", 2, 0, "step"),
        "events": ("MERGE bronze.conversion_events", 3, 0, "table"),
        "dead": ("MERGE bronze.dead_letter", 3, 1, "table"),
        "offsets": ("MERGE bronze.ingest_offsets (the commit marker, last)", 4, 0.5, "table"),
    }, [("kafka", "classify", ""), ("classify", "dedup", "events"), ("dedup", "events", ""),
        ("classify", "dead", "malformed"), ("events", "offsets", ""), ("dead", "offsets", "")]),
    "silver": Diagram("a Silver run: an interval of ingestion time, every event a row or a reject", {
        "bronze": ("bronze.conversion_events, ingested_at in [start, end)", 0, 0.5, "table"),
        "validate": ("validation_reason(payload)", 1, 0.5, "step"),
        "typed": ("typed columns + processed_at", 2, 0, "step"),
        "silver": ("MERGE silver.conversion_events", 3, 0, "table"),
        "rejected": ("MERGE silver.rejected_events", 3, 1, "table"),
    }, [("bronze", "validate", ""), ("validate", "typed", "valid"), ("typed", "silver", ""),
        ("validate", "rejected", "reason")]),
    "gold": Diagram("a Gold run: the keys an interval touched, recomputed from all of Silver", {
        "silver": ("silver rows processed in [start, end)", 0, 0, "table"),
        "keys": ("touched (event_date, user_id)", 1, 0, "step"),
        "recompute": ("recompute from ALL silver rows of those keys", 2, 0, "step"),
        "gold": ("MERGE gold.daily_user_stats", 3, 0, "table"),
    }, [("silver", "keys", ""), ("keys", "recompute", ""), ("recompute", "gold", "")]),
    "migration": Diagram("schema v2: a column added, old rows filled from Bronze's raw payloads", {
        "kafka": ("Kafka: v1 and v2 events", 0, 1, "kafka"),
        "bronze": ("bronze.conversion_events (raw payload, unchanged)", 1, 1, "table"),
        "alter": ("ALTER TABLE … ADD COLUMN client", 2, 0, "step"),
        "merge": ("MERGE … WHEN MATCHED AND t.client IS NULL", 2, 2, "step"),
        "silver": ("silver.conversion_events", 3, 1, "table"),
        "gold": ("gold.daily_client_stats (v2 events, per client)", 4, 1, "table"),
    }, [("kafka", "bronze", ""), ("bronze", "silver", ""), ("alter", "silver", ""),
        ("bronze", "merge", "client from payload"), ("merge", "silver", ""), ("silver", "gold", "")]),
    "maintenance": Diagram("the daily maintenance: fewer files, same rows", {
        "commits": ("small commits (Bronze every 15 min, the stream every checkpoint)", 0, 0, "job"),
        "files": ("many small files, snapshots, manifests", 1, 0, "table"),
        "compact": ("rewrite_data_files (closed days)", 2, 0, "step"),
        "manifests": ("rewrite_manifests", 3, 0, "step"),
        "expire": ("expire_snapshots (age and count)", 3, 1, "step"),
        "orphans": ("remove_orphan_files (age)", 2, 1, "step"),
        "after": ("fewer files, same rows", 1, 1, "table"),
    }, [("commits", "files", ""), ("files", "compact", ""), ("compact", "manifests", ""), ("manifests", "expire", ""),
        ("expire", "orphans", ""), ("orphans", "after", "")]),
}


def draw(name: str) -> plt.Figure:
    """The named diagram as a figure (shown by the cell that calls this)."""
    if name not in DIAGRAMS:
        raise ConfigError(f"no diagram {name!r}; the diagrams are {', '.join(sorted(DIAGRAMS))}")
    return DIAGRAMS[name].draw()
