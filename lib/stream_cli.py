"""`python -m lib stream ...`: operate the Flink stream job from a shell, as an operator would."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def stream_command(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from lib import flink, stack, stream

    job = stream.StreamJob(watermark_delay_s=args.watermark_delay, dedup_ttl=args.dedup_ttl,
                           checkpoint_interval=args.checkpoint_interval)
    stack.require_up()
    job_id = flink.running_job(job.name)
    if args.action == "start":
        job_id = stream.start(job)
        resumed = flink.restored_from(job_id)
        print(f"{job.name} RUNNING as {job_id}" + (f" (resumed from {resumed})" if resumed else ""))
        return 0
    if args.action == "tail":
        print("\n".join(flink.console_lines(stream.CONSOLE_TAG, last=args.lines)))
        return 0
    if job_id is None:
        print(f"{job.name} is not running; start it with `python -m lib stream start`")
        return 3
    if args.action == "restart":
        print(f"{job.name} RUNNING as {stream.restart(job_id, job)} (resumed from a savepoint taken as it stopped)")
    elif args.action == "cancel":
        print(f"{job.name} {flink.cancel(job_id)}; its latest checkpoint is kept for the next start")
    else:
        info, counts = flink.job(job_id), flink.checkpoints(job_id).get("counts", {})
        print(f"{job.name} {info['state']} as {job_id}; checkpoints: {counts}")
        rows = [(m["operator"][:70], m["records_in"], m["records_out"], _when(m["watermark_ms"]))
                for m in flink.vertex_metrics(job_id)]
        print(tabulate(rows, headers=["operator chain", "records in", "records out", "watermark"]))
    return 0


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
