"""Command line of the workbook: `python -m lib <command>`; `python -m lib --help` lists them."""

from __future__ import annotations

import argparse
import sys

from lib.flink import FlinkJobError
from lib.process import StackError
from lib.runs import LAYERS, ParameterError
from lib.traffic import ProduceError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="start, stop or inspect the embedded stack")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--service", action="append", help="only this service (repeatable)")

    run = sub.add_parser("run", help="execute a layer's notebook with papermill into runs/")
    run.add_argument("layer", help=f"one of: {', '.join(LAYERS)}")
    run.add_argument("--start", help="interval start, ISO-8601 (UTC when no offset)")
    run.add_argument("--end", help="interval end (exclusive), ISO-8601")
    run.add_argument("--backfill", action="store_true", help="re-read history for [start, end)")

    produce = sub.add_parser("produce", help="send reproducible traffic to the events topic, print its manifest")
    produce.add_argument("--events", type=_positive_int, required=True, help="number of requests (> 0)")
    produce.add_argument("--seed", type=int, default=7, help="the same seed gives the same records")
    produce.add_argument("--via-service", action="store_true",
                         help="send on-time requests through the HTTP API instead of straight to Kafka")

    stream = sub.add_parser("stream", help="the Flink stream job: start, status, restart, cancel, tail its console")
    stream.add_argument("action", choices=["start", "status", "restart", "cancel", "tail"])
    stream.add_argument("--watermark-delay", type=int, default=5, help="bounded out-of-orderness, seconds")
    stream.add_argument("--dedup-ttl", default="1 h", help="how long an event_id is remembered, e.g. '30 min'")
    stream.add_argument("--checkpoint-interval", default="5s", help="e.g. '5s'; the Iceberg sinks commit on each")
    stream.add_argument("--lines", type=_positive_int, default=20, help="tail: how many console lines")

    sub.add_parser("workbook", help="what `make run` does: stack up, every notebook, summary, stack down")
    sub.add_parser("kernel", help="register the .venv Jupyter kernel used by papermill and nbval")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give a count such as 1000") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count; give at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ParameterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StackError, ProduceError, FlinkJobError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "stack":
        from lib import stack

        if args.action == "up":
            for name, state in stack.up(args.service).items():
                print(f"{name:22} {state}")
            print()
            print(stack.format_status(stack.status(args.service)))
        elif args.action == "down":
            for name, state in stack.down(args.service).items():
                print(f"{name:22} {state}")
        else:
            rows = stack.status(args.service)
            print(stack.format_status(rows))
            return 0 if all(r.healthy for r in rows) else 3
        return 0
    if args.command == "kernel":
        from lib.kernel import install

        print(f"kernel spec written to {install()}")
        return 0
    if args.command == "run":
        from lib.runs import run_layer

        return run_layer(args.layer, args.start, args.end, args.backfill)
    if args.command == "produce":
        from tabulate import tabulate

        from lib.traffic import produce

        manifest = produce(args.events, seed=args.seed, via_service=args.via_service)
        print(tabulate(manifest.summary_rows(), headers=["records", "count"]))
        print(f"\n{manifest.records} records acknowledged in {manifest.seconds:.2f}s "
              f"({manifest.records / max(manifest.seconds, 1e-9):,.0f}/s, {manifest.mode})")
        return 0
    if args.command == "stream":
        from lib.stream_cli import stream_command

        return stream_command(args)
    if args.command == "workbook":
        from lib.workbook import run_workbook

        return run_workbook()
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
