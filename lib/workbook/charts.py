"""Plots the notebooks show: a picture where a person would rather look than read."""

from __future__ import annotations

import json
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from lib.contract.events import OPERATIONS, malformed_reason


def events_frame(records: list[Any]) -> pd.DataFrame:
    """Kafka records of one batch as a table of events (malformed records left out, duplicates kept)."""
    rows = []
    for r in records:
        if malformed_reason(r.value) is not None:
            continue
        doc = json.loads(r.value)
        rows.append({"partition": r.partition, "event_id": doc.get("event_id"), "user_id": doc.get("user_id"),
                     "operation": doc.get("operation"), "success": doc.get("success"),
                     "event_time": pd.to_datetime(doc.get("event_time"), utc=True, errors="coerce")})
    frame = pd.DataFrame(rows)
    return frame[frame["operation"].isin(OPERATIONS)]  # invalid events (e.g. 'to_greek') are Silver's business


def traffic_overview(events: pd.DataFrame, batch_start: pd.Timestamp) -> plt.Figure:
    """Three panels: events per minute of event time, on-time vs late, success vs failure by operation."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    late = events["event_time"] < batch_start - pd.Timedelta(minutes=5)
    on_time = events.loc[~late, "event_time"].dt.floor("min").value_counts().sort_index()
    axes[0].plot(on_time.index, on_time.to_numpy(), color="tab:blue")
    axes[0].set_title("on-time events per minute of event_time")
    axes[0].tick_params(axis="x", rotation=30)
    pd.Series({"on time": int((~late).sum()), "late (hours/days old)": int(late.sum())}).plot.bar(
        ax=axes[1], color=["tab:green", "tab:orange"], rot=0, title="on time vs late")
    by_op = events.groupby(["operation", "success"]).size().unstack(fill_value=0)
    by_op.rename(columns={True: "success", False: "failed"}).plot.bar(
        ax=axes[2], stacked=True, rot=0, title="requests by operation", color=["tab:red", "tab:green"])
    fig.tight_layout()
    return fig


def event_vs_processing_time(rows: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """Three panels: each event's distance to the watermark when it arrived (event time minus
    watermark: above 0 on time, below 0 late), the watermark's lag behind processing time, and
    the one-minute windows the watermark closed, per user.

    `rows` are stream rows (ingested_at, event_time, watermark_at_arrival, late); `windows` are the
    one-minute counts (window_start, user_id, events).
    """
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    rows = rows.sort_values("ingested_at")
    marked = rows.dropna(subset=["watermark_at_arrival"])  # none yet in the first moments after a (re)start
    ahead = (marked.event_time - marked.watermark_at_arrival).dt.total_seconds()
    on_time, late = ~marked.late, marked.late
    left.scatter(marked.ingested_at[on_time], ahead[on_time], s=6, label="on time", color="tab:blue")
    left.scatter(marked.ingested_at[late], ahead[late], s=22, marker="x", label="late (behind the watermark)",
                 color="tab:red")
    left.axhline(0, color="black", linewidth=1, label="the watermark")
    # Symmetric log: seconds-ahead on-time events and minutes-behind late ones on one legible axis.
    left.set_yscale("symlog", linthresh=10)
    left.set(xlabel="processing time (ingested_at)", ylabel="event time - watermark (s)",
             title="each event against the watermark at its arrival")
    left.legend(loc="lower left", bbox_to_anchor=(0.0, 0.2), fontsize=8)  # above the late crosses
    lag = (marked.ingested_at - marked.watermark_at_arrival).dt.total_seconds()
    middle.plot(marked.ingested_at, lag, color="black", linewidth=1)
    middle.set(xlabel="processing time (ingested_at)", ylabel="seconds", ylim=(0, max(1.0, lag.max() * 1.2)),
               title="watermark lag: processing time - watermark")
    if not windows.empty:
        per_window = windows.pivot_table(index="window_start", columns="user_id", values="events", aggfunc="sum")
        per_window.index = per_window.index.strftime("%H:%M")
        per_window.plot.bar(stacked=True, ax=right, width=0.8, legend=False)
        right.legend(fontsize=7, ncol=2, title="user")
    right.set(xlabel="one-minute window (event time, UTC)", ylabel="distinct on-time events",
              title="tumbling windows, counted per user")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def timeline_chart(timeline: Any, spans: dict[str, tuple[Any, Any]], marks: dict[str, Any], title: str,
                   series: tuple[str, list[tuple[Any, int]]] | None = None) -> plt.Figure:
    """A drill on one time axis (seconds from its start): each span a bar on its own row, each mark a dashed
    line; `series` (a label and (when, value) samples), when given, drawn above as a step line."""
    labels = list(spans)
    top = None
    if series:
        fig, (top, ax) = plt.subplots(2, 1, sharex=True, figsize=(10, 0.5 * len(labels) + 3.6),
                                      gridspec_kw={"height_ratios": [2, max(1, len(labels) * 0.5)]})
        label, samples = series
        top.step([timeline.seconds(t) for t, _ in samples], [v for _, v in samples], where="post")
        top.set_ylabel(label)
        top.set_title(title, pad=16)
        for when in marks.values():
            top.axvline(timeline.seconds(when), color="black", linestyle="--", linewidth=1)
    else:
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(labels) + 1.4))
        ax.set_title(title, pad=16)
    for row, name in enumerate(labels):
        began, ended = (timeline.seconds(t) for t in spans[name])
        colour = "tab:red" if "stopped" in name or "down" in name else "tab:blue"
        ax.barh(row, ended - began, left=began, height=0.5, color=colour, alpha=0.7)
    for name, when in marks.items():
        ax.axvline(timeline.seconds(when), color="black", linestyle="--", linewidth=1)
        named = top if top is not None else ax  # the label above the upper panel
        named.text(timeline.seconds(when), 1.01, name, transform=named.get_xaxis_transform(), ha="center",
                   va="bottom", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the drill's start")
    fig.tight_layout()
    return fig
