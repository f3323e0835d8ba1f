"""The embedded stack's supervisor: start, check and stop every service, in order.

No Docker needed: every service is a local process (lib.stack.kafka, catalog, flink, roman),
bound to 127.0.0.1, with its data and logs under STACK_HOME. `up` is idempotent and waits until
each service really answers (not just until its port opens); `down` stops every process group
and checks that every port is free again.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tabulate import tabulate
from tqdm import tqdm

from lib.config import Settings
from lib.errors import StackError
from lib.plumbing.waits import poll
from lib.stack.airflow import airflow_services
from lib.stack.base import MIN_JAVA, Service, java_major
from lib.stack.catalog import CatalogServer
from lib.stack.flink import FlinkProcess
from lib.stack.kafka import KafkaBroker
from lib.stack.process import ManagedProcess, log_tail, port_is_free, port_owner
from lib.stack.roman import RomanService
from lib.stack.s3 import S3Server
from lib.stack.spark import SparkMaster, SparkWorker

HEALTH_TIMEOUT_S = 120.0


def services(cfg: Settings, every_mode: bool = False, airflow: bool = False) -> list[Service]:
    """The stack in start order: the S3 server only in S3 mode (WAREHOUSE=s3), before the catalog;
    in cluster mode (CLUSTER=1) a second Flink taskmanager and a Spark standalone master and worker.

    `every_mode`: the services of every mode, so `down` also stops what an `up` in another mode
    started under the same STACK_HOME (an S3 server left from `WAREHOUSE=s3 make up`, say), and
    Airflow's processes. `airflow`: Airflow's processes too (`python -m lib airflow up` starts them).
    """
    storage: list[Service] = [S3Server(cfg)] if cfg.warehouse == "s3" or every_mode else []
    clustered = cfg.cluster or every_mode
    spark: list[Service] = [SparkMaster(cfg), SparkWorker(cfg)] if clustered else []
    return [
        KafkaBroker(cfg),
        RomanService(cfg),
        *storage,
        CatalogServer(cfg),
        FlinkProcess(cfg, "jobmanager"),
        *[FlinkProcess(cfg, "taskmanager", n) for n in range(1, (2 if clustered else 1) + 1)],
        *spark,
        *(airflow_services(cfg) if airflow or every_mode else []),
    ]


def select(names: Iterable[str] | None, cfg: Settings, every_mode: bool = False) -> list[Service]:
    """The named services (all when None), or a StackError listing the valid names."""
    every = services(cfg, every_mode, airflow=names is not None)
    if names is None:
        return every
    wanted = list(names)
    known = {s.name for s in every}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise StackError(f"Unknown service(s) {', '.join(unknown)}; the stack has: {', '.join(sorted(known))}.")
    return [s for s in every if s.name in wanted]


def _check_ports(service: Service) -> None:
    for port in service.ports():
        if not port_is_free(service.host, port):
            raise StackError(
                f"Cannot start {service.name}: port {service.host}:{port} is already taken by "
                f"{port_owner(port)}. Stop that process (for example `kill <pid>`, or "
                f"`python -m lib stack down` if it is a stack left from another checkout)"
                + (f", or move {service.name} elsewhere by setting {service.env_var}." if service.env_var
                   else f"; {service.name}'s ports are fixed, so the port has to be freed.")
            )


def _wait_healthy(service: Service, proc: ManagedProcess, cfg: Settings, timeout: float) -> float:
    started = time.monotonic()

    def ready() -> bool:
        code = proc.exit_code()
        if code is not None:
            raise StackError(
                f"{service.name} exited during start-up (exit code {code}). Last lines of "
                f"{proc.log_file}:\n{log_tail(proc.log_file)}\n{service.hint()}"
            )
        return service.healthy(cfg)

    def gave_up(_: bool) -> StackError:
        proc.stop()
        return StackError(
            f"{service.name} did not become healthy within {timeout:.0f}s at {service.address()}. "
            f"Last lines of {proc.log_file}:\n{log_tail(proc.log_file)}\n{service.hint()}"
        )

    poll(ready, timeout_s=timeout, every_s=0.25, timed_out=gave_up)
    return time.monotonic() - started


def start_service(service: Service, cfg: Settings, timeout: float = HEALTH_TIMEOUT_S) -> float:
    """Check ports, prepare, start and wait for one service; returns seconds to healthy."""
    _check_ports(service)
    service.prepare(cfg)
    proc = service.process(cfg)
    proc.start(service.command(cfg), env=service.environment(cfg), cwd=cfg.stack_home)
    try:
        seconds = _wait_healthy(service, proc, cfg, timeout)
        service.after_start(cfg)
    except BaseException:
        proc.stop()
        raise
    return seconds


def up(cfg: Settings, names: Iterable[str] | None = None, timeout: float = HEALTH_TIMEOUT_S,
       quiet: bool = False) -> dict[str, str]:
    """Start every service that is not running and wait until all are healthy.

    Returns {service: "started in N s" | "already running"}. On failure the services this call
    started are stopped again, so a failed `up` leaves no half-started stack behind.
    """
    chosen = select(names, cfg)
    if cfg.external:  # someone else runs them: ask each one, start none
        require_up(cfg, [s.name for s in chosen])
        return {s.name: "answers (STACK=external)" for s in chosen}
    major = java_major(cfg.java)
    if major < MIN_JAVA:
        raise StackError(f"Java {major} found; the stack needs Java {MIN_JAVA}+. Install a newer JDK or set JAVA_HOME.")
    report: dict[str, str] = {}
    started: list[ManagedProcess] = []
    bar = tqdm(chosen, desc="stack up", unit="service", disable=quiet, file=sys.stderr)
    try:
        for service in bar:
            bar.set_postfix_str(service.name)
            proc = service.process(cfg)
            if proc.pid() is not None:
                if service.healthy(cfg):
                    report[service.name] = "already running"
                    continue
                _wait_healthy(service, proc, cfg, timeout)
                report[service.name] = "already running (was starting)"
                continue
            started.append(proc)
            seconds = start_service(service, cfg, timeout)
            report[service.name] = f"started in {seconds:.1f}s"
    except BaseException:
        for proc in reversed(started):
            proc.stop()
        raise
    finally:
        bar.close()
    return report


def down(cfg: Settings, names: Iterable[str] | None = None) -> dict[str, str]:
    """Stop the services (all by default, in reverse order) and check their ports are free."""
    if cfg.external:
        _refuse_external(cfg, "stop", [s.name for s in select(names, cfg)])
    report: dict[str, str] = {}
    stopped: list[Service] = []
    this_mode = {s.name for s in services(cfg)}
    for service in reversed(select(names, cfg, every_mode=True)):
        if service.process(cfg).stop():
            stopped.append(service)
            report[service.name] = "stopped"
        elif service.name in this_mode:
            report[service.name] = "not running"
    for service in stopped:
        for port in service.ports():
            _wait_port_freed(service, port)
    return report


def _wait_port_freed(service: Service, port: int, timeout_s: float = 15.0) -> None:
    """Wait until a stopped service's port is free (a JVM takes a moment to release it); a StackError
    names its holder if it stays taken."""
    poll(lambda: port_is_free(service.host, port), timeout_s=timeout_s, every_s=0.2, timed_out=lambda _: StackError(
        f"{service.name} was stopped but port {service.host}:{port} is still taken by {port_owner(port)}; "
        "stop that process by hand."))


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    pid: int | None
    address: str
    healthy: bool
    memory_bytes: int = 0  # resident, with the children it started; 0 when another stack runs it


def status(cfg: Settings, names: Iterable[str] | None = None) -> list[ServiceStatus]:
    """One row per service: its pid (if we started it), address, whether it answers now, and its
    resident memory."""
    rows = []
    for s in select(names, cfg):
        proc = s.process(cfg)
        rows.append(ServiceStatus(s.name, proc.pid(), s.address(), s.healthy(cfg), proc.memory_bytes()))
    return rows


def memory_bytes(cfg: Settings) -> dict[str, int]:
    """Resident memory per service this stack runs (children included), for the cluster mode's budget."""
    processes = {s.name: s.process(cfg) for s in services(cfg)}
    return {name: proc.memory_bytes() for name, proc in processes.items() if proc.pid() is not None}


def _refuse_external(cfg: Settings, verb: str, names: list[str]) -> None:
    """With STACK=external the services are not this workbook's to stop: say so, and how to by hand."""
    raise StackError(f"STACK=external: {', '.join(names)} run elsewhere, so this workbook cannot {verb} them. "
                     f"Do it where they run (with docker-compose: `docker compose stop {' '.join(names)}`), "
                     "or run this step on the embedded stack (STACK=embedded).")


def running(cfg: Settings) -> set[str]:
    """The services whose process this stack started and that still run (in any mode); none with
    STACK=external."""
    if cfg.external:
        return set()
    return {s.name for s in services(cfg, every_mode=True) if s.process(cfg).pid() is not None}


def with_storage(cfg: Settings, names: Iterable[str] | None) -> list[str] | None:
    """`names` with the S3 server before the catalog when the catalog is among them in S3 mode: its tables'
    files live there, so whatever needs the catalog needs it too. None (every service) stays None."""
    wanted = list(names) if names is not None else None
    if wanted and cfg.warehouse == "s3" and "iceberg-rest" in wanted and "s3" not in wanted:
        wanted.insert(wanted.index("iceberg-rest"), "s3")
    return wanted


def require_up(cfg: Settings, names: Iterable[str] | None = None) -> None:
    """Raise a StackError that says how to start the stack when any (named) service is down.

    Health is asked of the service itself, whoever started it: this stack, docker-compose or a cluster.
    """
    down_ = [s for s in select(with_storage(cfg, names), cfg) if not s.healthy(cfg)]
    if down_:
        which = ", ".join(f"{s.name} ({s.address()})" for s in down_)
        settings_ = sorted({s.env_var.split(" ")[0] for s in down_ if s.env_var})
        raise StackError(
            f"The stack is not running: {which} did not answer. Start it with `make up` "
            "(or `.venv/bin/python -m lib stack up`)"
            + (f", or point {', '.join(settings_)} at a running one." if settings_ else ".")
        )


def format_status(rows: list[ServiceStatus]) -> str:
    """The status table, with a total of the memory the stack's processes hold."""
    table = [(r.service, r.pid or "-", r.address, "yes" if r.healthy else "no",
              f"{r.memory_bytes / 2**20:,.0f}" if r.pid else "-") for r in rows]
    table.append(("total", "", "", "", f"{sum(r.memory_bytes for r in rows) / 2**20:,.0f}"))
    return tabulate(table, headers=["service", "pid", "address", "healthy", "memory MiB"],
                    colalign=("left", "right", "left", "left", "right"))


def kill(cfg: Settings, name: str) -> int:
    """SIGKILL a service's whole process group, as a crashed machine would; returns the pid.

    No shutdown hook runs: a killed taskmanager leaves its Flink job to the jobmanager's restart
    strategy, which resumes from the latest checkpoint once a taskmanager is back.
    """
    if cfg.external:
        _refuse_external(cfg, "kill", [name])
    pid = select([name], cfg)[0].process(cfg).pid()
    if pid is None:
        raise StackError(f"{name} is not running under this stack; start it with `python -m lib stack up`")
    os.killpg(pid, signal.SIGKILL)
    return pid
