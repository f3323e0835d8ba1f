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


def traffic_overview(events: pd.DataFrame, batch_start: pd.Timestamp, manifest: Any) -> plt.Figure:
    """Three panels: on-time events per minute of event time; every record of the batch by kind, as the
    manifest counted it (what each layer must keep or set aside); success vs failure by operation."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1.1, 1.3, 0.9]})
    late = events["event_time"] < batch_start - pd.Timedelta(minutes=5)
    on_time = events.loc[~late, "event_time"].dt.floor("min").value_counts().sort_index()
    axes[0].plot(on_time.index, on_time.to_numpy(), color="tab:blue")
    axes[0].set(title="on-time events per minute of event_time", ylabel="events")
    axes[0].tick_params(axis="x", rotation=30)
    kinds = {"valid, on time": manifest.requests - manifest.late_events,
             "valid, late (hours/days old)": manifest.late_events,
             "invalid (Silver rejects)": manifest.invalid_events,
             "duplicate deliveries (Bronze drops)": manifest.duplicates}
    kinds |= {f"malformed: {k} (dead letter)": v for k, v in sorted(manifest.malformed.items())}
    bars = pd.Series(kinds).iloc[::-1]
    bars.plot.barh(ax=axes[1], color="tab:gray")
    for y, value in enumerate(bars):
        axes[1].text(value, y, f" {value:,}", va="center", fontsize=8)
    axes[1].set(title=f"the batch's {manifest.records:,} records by kind", xlabel="records (log scale)")
    axes[1].set_xscale("log")
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


def latency_chart(seconds: pd.DataFrame, goal_s: float = 1.0, checkpoint_s: float | None = None) -> plt.Figure:
    """One histogram per leg (columns of `seconds`), with its p50 and p99 marked and the goal (the design's
    "sub-second") drawn as a red line; `checkpoint_s`, when given, is shaded on the Iceberg legs."""
    fig, axes = plt.subplots(1, len(seconds.columns), figsize=(4 * len(seconds.columns), 3.4), sharey=False)
    for ax, leg in zip(axes, seconds.columns, strict=True):
        values = seconds[leg].dropna()
        ax.hist(values, bins=40, color="tab:blue", alpha=0.75)
        for q, style in ((0.5, "-"), (0.99, ":")):
            at = values.quantile(q)
            ax.axvline(at, color="black", linestyle=style, linewidth=1, label=f"p{int(q * 100)} {at:.2f} s")
        ax.axvline(goal_s, color="tab:red", linewidth=1.5, label=f"goal: under {goal_s:g} s")
        if checkpoint_s and "Iceberg" in leg:
            ax.axvspan(0, checkpoint_s, color="tab:orange", alpha=0.12, label=f"one checkpoint ({checkpoint_s:g} s)")
        ax.set(title=leg, xlabel="seconds", ylabel="events")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cadence_chart(intervals: pd.DataFrame, title: str) -> plt.Figure:
    """Each job's intervals over one day, a row per job (`intervals`: job, start, end), alternately shaded
    so each interval shows as its own bar, with the count per job on its row."""
    jobs = list(dict.fromkeys(intervals.job))
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(jobs) + 1.2))
    for row, name in enumerate(jobs):
        mine = intervals[intervals.job == name].reset_index(drop=True)
        for k, interval in mine.iterrows():
            hours = (interval.end - interval.start).total_seconds() / 3600
            began = interval.start.hour + interval.start.minute / 60
            ax.barh(row, hours, left=began, height=0.6, color="tab:blue" if k % 2 == 0 else "tab:cyan",
                    edgecolor="white", linewidth=0.3)
        ax.text(24.2, row, f"{len(mine)} run{'s' if len(mine) != 1 else ''}", va="center", fontsize=8)
    ax.set_yticks(range(len(jobs)), jobs)
    ax.invert_yaxis()
    ax.set_xlim(0, 26)
    ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
    ax.set(xlabel="hour of the day (UTC)", title=title)
    fig.tight_layout()
    return fig


def runs_chart(runs: pd.DataFrame) -> plt.Figure:
    """DAG runs on one time axis (`runs`: DAG, run, started, ended, state), a row per run in start order,
    coloured by DAG, labelled with the interval it worked on."""
    runs = runs.dropna(subset=["started", "ended"]).sort_values("started").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(runs) + 1.4))
    if runs.empty:
        return fig
    origin = runs.started.min()
    colours = dict(zip(dict.fromkeys(runs.DAG), ["tab:orange", "tab:blue", "tab:green", "tab:purple"], strict=False))
    for row, run in runs.iterrows():
        began = (run.started - origin).total_seconds()
        lasted = (run.ended - run.started).total_seconds()
        ax.barh(row, lasted, left=began, height=0.6, color=colours.get(run.DAG, "tab:gray"),
                alpha=0.85 if run.state == "success" else 0.35)
        ax.text(began + lasted + 1, row, f"{run.state}, {lasted:.0f} s", va="center", fontsize=8)
    labels = [f"{r.DAG}: {r['interval start']:%m-%d %H:%M} to {r['interval end']:%m-%d %H:%M}"
              for _, r in runs.iterrows()]
    ax.set_yticks(range(len(runs)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max((runs.ended - origin).dt.total_seconds()) * 1.18)
    ax.set(xlabel="seconds from the first run's start",
           title="what ran when: each DAG run and the interval it worked on")
    fig.tight_layout()
    return fig
