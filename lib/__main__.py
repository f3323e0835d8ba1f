"""Command line of the workbook: `python -m lib <command>`; `python -m lib --help` lists them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from tabulate import tabulate

from lib import stack
from lib.config import Settings, settings
from lib.errors import ConfigError, ParameterError, WorkbookError
from lib.jobs import freshness
from lib.jobs.airflow import airflow
from lib.jobs.alerts import alert
from lib.jobs.history import RunHistory
from lib.jobs.kernel import install
from lib.jobs.registry import JOBS, Interval, job, parse_time
from lib.jobs.runner import run_job
from lib.jobs.scheduler import Retry, schedule
from lib.kafka import quiet_client_logs
from lib.stack.airflow import airflow_home, airflow_services, credentials
from lib.stack.flink import RESTART_ATTEMPTS
from lib.stream import lifecycle
from lib.stream.job import CONSOLE_TAG, JOB_NAME, StreamJob
from lib.stream.rest import FlinkRest
from lib.traffic.produce import produce


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack_cmd = sub.add_parser("stack", help="start, stop or inspect the embedded stack")
    stack_cmd.add_argument("action", choices=["up", "down", "status"])
    stack_cmd.add_argument("--service", action="append", help="only this service (repeatable)")

    run_cmd = sub.add_parser("run", help="execute a job's notebook with papermill into runs/")
    run_cmd.add_argument("job", help=f"one of: {', '.join(JOBS)}")
    run_cmd.add_argument("--start", help="interval start, ISO-8601 (UTC when no offset)")
    run_cmd.add_argument("--end", help="interval end (exclusive), ISO-8601")
    run_cmd.add_argument("--backfill", action="store_true", help="bronze: re-read history for [start, end)")
    run_cmd.add_argument("--max-records", type=_positive_int, help="bronze: read at most N records this run")
    run_cmd.add_argument("--attempt", type=_positive_int, default=1,
                         help="which try this is, for the run history (an orchestrator's retries pass 2, 3, ...)")

    sched = sub.add_parser("schedule", help="run every job due in a range, in order, with retries and alerts")
    sched.add_argument("--from", dest="start", required=True, help="range start, ISO-8601 (UTC when no offset)")
    sched.add_argument("--to", dest="end", help="range end (exclusive), ISO-8601; default now")
    sched.add_argument("--watch", action="store_true", help="keep going on the real clock until Ctrl-C")
    sched.add_argument("--attempts", type=_positive_int, default=3, help="tries per run (default 3: two retries)")
    sched.add_argument("--retry-delay", type=float, default=30.0, help="seconds before the first retry, doubling")
    sched.add_argument("--poll", type=float, default=60.0, help="--watch: seconds between passes")

    airflow_cmd = sub.add_parser("airflow", help="Airflow beside the stack (up|down|status), or Airflow's own command "
                                                 "line on dags/ (install: make airflow)")
    airflow_cmd.add_argument("args", nargs=argparse.REMAINDER,
                             help="up, down or status; or Airflow's, for example: dags test bronze 2026-11-29T10:15")

    runs_cmd = sub.add_parser("runs", help="the scheduler's run history")
    runs_cmd.add_argument("--job", help=f"only this job: one of {', '.join(JOBS)}")
    runs_cmd.add_argument("--last", type=_positive_int, help="only the last N attempts")
    runs_cmd.add_argument("--covered", nargs=2, metavar=("START", "END"),
                          help="with --job: exit 0 when the job's succeeded runs cover [START, END), else 1 "
                               "(what a downstream job waits for)")

    fresh_cmd = sub.add_parser("freshness", help="each layer's newest data, its age against its cadence; exit 1 "
                                                 "when one is stale")
    fresh_cmd.add_argument("--json", action="store_true", help="one JSON object per layer, for a monitor")
    fresh_cmd.add_argument("--stream-job", default=JOB_NAME, help=f"the stream's Flink job (default {JOB_NAME})")
    fresh_cmd.add_argument("--check", action="store_true",
                           help="also alert each layer that turned stale, and say each that recovered (what the "
                                "scheduler does after every pass)")

    produce_cmd = sub.add_parser("produce", help="send reproducible traffic to the events topic, print its manifest")
    produce_cmd.add_argument("--events", type=_positive_int, required=True, help="number of requests (> 0)")
    produce_cmd.add_argument("--seed", type=int, default=7, help="the same seed gives the same records")
    produce_cmd.add_argument("--via-service", action="store_true",
                         help="send on-time requests through the HTTP API instead of straight to Kafka")

    stream_cmd = sub.add_parser("stream", help="the Flink stream job: start, status, restart, cancel, tail its console")
    stream_cmd.add_argument("action", choices=["start", "status", "restart", "cancel", "tail"])
    stream_cmd.add_argument("--watermark-delay", type=int, default=5, help="bounded out-of-orderness, seconds")
    stream_cmd.add_argument("--dedup-ttl", default="1 h", help="how long an event_id is remembered, e.g. '30 min'")
    stream_cmd.add_argument("--checkpoint-interval", default="5s", help="e.g. '5s'; the Iceberg sinks commit on each")
    stream_cmd.add_argument("--lines", type=_positive_int, default=20, help="tail: how many console lines")
    stream_cmd.add_argument("--name", default=JOB_NAME, help=f"status, cancel: the job's name (default {JOB_NAME})")
    stream_cmd.add_argument("--fresh", action="store_true",
                            help="start: ignore kept checkpoints and savepoints (after a change of the job's SQL)")

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
        cfg = settings()  # the one place the CLI reads the environment
        quiet_client_logs()
        return _dispatch(args, cfg)
    except (ParameterError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkbookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, cfg: Settings) -> int:
    if args.command == "stack":
        return _stack_command(args, cfg)
    if args.command == "kernel":
        print(f"kernel spec written to {install()}")
        return 0
    if args.command == "run":
        # An Airflow task's environment names its DAG run (BashOperator passes the AIRFLOW_CTX_* context).
        dag_run = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
        return run_job(cfg, args.job, args.start, args.end, args.backfill, args.max_records, args.attempt,
                       runner=f"airflow {dag_run}" if dag_run else "cli")
    if args.command == "schedule":
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to") if args.end else None
        if end is not None and start >= end:
            raise ParameterError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
        if args.watch and end is not None:
            raise ParameterError("--watch runs up to the real clock: give --from alone")
        return schedule(cfg, start, end, args.watch, Retry(args.attempts, args.retry_delay), args.poll)
    if args.command == "airflow":
        if args.args[:1] and args.args[0] in AIRFLOW_ACTIONS and len(args.args) == 1:
            return _airflow_command(args.args[0], cfg)
        return airflow(cfg, args.args).returncode
    if args.command == "runs":
        if args.job:
            job(args.job)
        if args.covered:
            if not args.job:
                raise ParameterError("--covered needs --job: whose runs should cover the interval?")
            interval = Interval(parse_time(args.covered[0], "START"), parse_time(args.covered[1], "END"))
            covered = RunHistory(cfg).covered(args.job, interval)
            print(f"{args.job} {'covers' if covered else 'does not cover yet'} "
                  f"[{interval.start.isoformat()}, {interval.end.isoformat()})")
            return 0 if covered else 1
        table = RunHistory(cfg).frame(args.job, args.last)
        # who ran it beside what it ran: the embedded scheduler's, Airflow's and operators' runs alike
        order = ["job", "runner", "interval_start", "interval_end", "attempt", "status", "started_at", "duration_s",
                 "rows_merged", "error", "notebook"]
        shown = table[order].fillna("")
        shown["error"] = shown["error"].astype(str).str.slice(0, 60)
        print(tabulate(shown.values.tolist(), headers=list(shown.columns)) if len(shown) else "no runs yet")
        return 0
    if args.command == "freshness":
        return _freshness_command(args, cfg)
    if args.command == "produce":
        manifest = produce(cfg, args.events, seed=args.seed, via_service=args.via_service)
        print(tabulate(manifest.summary_rows(), headers=["records", "count"]))
        print(f"\n{manifest.records} records acknowledged in {manifest.seconds:.2f}s "
              f"({manifest.records / max(manifest.seconds, 1e-9):,.0f}/s, {manifest.mode})")
        return 0
    if args.command == "stream":
        return _stream_command(args, cfg)
    if args.command == "workbook":
        from lib.workbook.run import run_workbook  # lazy: only `make run` needs Spark in this process

        return run_workbook(cfg)
    raise AssertionError(args.command)


def _stack_command(args: argparse.Namespace, cfg: Settings) -> int:
    if args.action == "up":
        for name, state in stack.up(cfg, args.service).items():
            print(f"{name:22} {state}")
        print()
        print(stack.format_status(stack.status(cfg, args.service)))
    elif args.action == "down":
        stopping_flink = args.service is None or "flink-jobmanager" in args.service
        if stopping_flink and "flink-jobmanager" in stack.running(cfg):
            # Stop the stream with a savepoint first, so the next start resumes exactly there.
            for name, savepoint in lifecycle.park(cfg).items():
                print(f"{name:22} stopped with a savepoint ({savepoint.rsplit('/', 1)[-1]})")
        for name, state in stack.down(cfg, args.service).items():
            print(f"{name:22} {state}")
    else:
        rows = stack.status(cfg, args.service)
        print(stack.format_status(rows))
        return 0 if all(r.healthy for r in rows) else 3
    return 0


def _freshness_command(args: argparse.Namespace, cfg: Settings) -> int:
    stack.require_up(cfg, ["iceberg-rest"])
    layers = freshness.freshness(cfg, stream_job=args.stream_job)
    if args.check:
        freshness.check(cfg, stream_job=args.stream_job)
    if args.json:
        print(json.dumps([layer.row() for layer in layers], indent=1))
    else:
        rows = [layer.row() for layer in layers]
        print(tabulate([list(r.values()) for r in rows], headers=list(rows[0])))
    return 1 if any(layer.stale for layer in layers) else 0


AIRFLOW_ACTIONS = ("up", "down", "status")


def _airflow_command(action: str, cfg: Settings) -> int:
    """`python -m lib airflow up|down|status`: Airflow's api-server, dag-processor and scheduler as
    services of the stack; `up` says where the UI is and who to log in as."""
    names = [s.name for s in airflow_services(cfg)]
    if action == "up":
        for name, state in stack.up(cfg, names).items():
            print(f"{name:24} {state}")
        print(f"\nAirflow's UI and REST API: {cfg.airflow_url} (user admin, password "
              f"{credentials(cfg)['admin_password']}, kept in {airflow_home(cfg) / 'secrets.json'})")
        return 0
    if action == "down":
        for name, state in stack.down(cfg, names).items():
            print(f"{name:24} {state}")
        return 0
    rows = stack.status(cfg, names)
    print(stack.format_status(rows))
    return 0 if all(r.healthy for r in rows) else 3


def _stream_command(args: argparse.Namespace, cfg: Settings) -> int:
    """`python -m lib stream ...`: operate the Flink stream job from a shell, as an operator would."""
    job = StreamJob(name=args.name, watermark_delay_s=args.watermark_delay, dedup_ttl=args.dedup_ttl,
                    checkpoint_interval=args.checkpoint_interval)
    # Status and the console are Flink's to tell, and an operator needs them most when Kafka or the catalog
    # is away; starting, restarting or cancelling a job needs every service the job uses.
    needs = ["flink-jobmanager"] if args.action in ("status", "tail") else [
        "kafka", "iceberg-rest", "flink-jobmanager", "flink-taskmanager"]
    stack.require_up(cfg, needs)
    flink = FlinkRest(cfg)
    job_id = flink.running_job(job.name)
    if args.action == "start":
        job_id = lifecycle.start(cfg, job, fresh=args.fresh)
        resumed = flink.restored_from(job_id)
        print(f"{job.name} RUNNING as {job_id}" + (f" (resumed from {resumed})" if resumed else ""))
        return 0
    if args.action == "tail":
        print("\n".join(flink.console_lines(CONSOLE_TAG, last=args.lines)))
        return 0
    if job_id is None and args.action == "status":
        return _stream_down(cfg, flink, job.name)
    if job_id is None:
        print(f"{job.name} is not running; start it with `python -m lib stream start`")
        return 3
    if args.action == "restart":
        new_id = lifecycle.restart(cfg, job_id, job)
        print(f"{job.name} RUNNING as {new_id} (resumed from a savepoint taken as it stopped)")
    elif args.action == "cancel":
        print(f"{job.name} {lifecycle.cancel(cfg, job_id)}; its latest checkpoint is kept for the next start")
    else:
        info, counts = flink.job(job_id), flink.checkpoints(job_id).get("counts", {})
        restarts = flink.restarts(job_id)
        print(f"{job.name} {info['state']} as {job_id}; restarts: {restarts}; checkpoints: {counts}")
        if restarts or info["state"] != "RUNNING":
            print(f"it is failing and restarting ({RESTART_ATTEMPTS} restarts before it fails for good). "
                  f"{flink.why(job_id)}")
        metrics = flink.vertex_metrics(job_id)
        rows = [(m["operator"][:70], m["records_in"], m["records_out"], _when(m["watermark_ms"])) for m in metrics]
        print(tabulate(rows, headers=["operator chain", "records in", "records out", "watermark"]))
        if metrics:
            print(f"sampled at {metrics[0]['sampled_at'].isoformat(timespec='seconds')} (records since the job "
                  "started or restored; a watermark is the lowest of the chain's inputs)")
        down = [s for s in stack.status(cfg, ["kafka", "iceberg-rest"]) if not s.healthy]
        for service in down:
            print(f"{service.service} ({service.address}) does not answer: the job cannot read or commit until it is "
                  "back, then it goes on from its latest checkpoint")
    return 0


def _stream_down(cfg: Settings, flink: FlinkRest, name: str) -> int:
    """`stream status` of a job that is not running: a job that failed for good alerts, with its cause."""
    newest = flink.newest_job(name)
    if newest is None or newest["state"] != "FAILED":
        print(f"{name} is not running; start it with `python -m lib stream start`")
        return 3
    cause = flink.why(newest["jid"])
    print(f"{name} FAILED as {newest['jid']} after {flink.restarts(newest['jid'])} restarts. {cause} "
          "Fix the cause, then `python -m lib stream start` resumes from its latest checkpoint.")
    alert(cfg, f"stream:{name}", "the stream", RESTART_ATTEMPTS, None, f"the Flink job FAILED: {cause}", None)
    return 1


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


if __name__ == "__main__":
    sys.exit(main())
