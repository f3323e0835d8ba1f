"""The embedded stack: Kafka, the Iceberg REST catalog and a Flink session cluster as local processes.

No Docker needed: every service is a JVM started from jars that Maven fetched (build/jars/) or
from the apache-flink package's own scripts, bound to 127.0.0.1, with its data and logs under
STACK_HOME. `up` is idempotent and waits until each service really answers (not just until its
port opens); `down` stops every process group and checks that every port is free again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lib.config import Settings, settings
from lib.process import ManagedProcess, StackError, log_tail, port_is_free, port_owner

MIN_JAVA = 17
HEALTH_TIMEOUT_S = 120.0


def http_json(url: str, timeout: float = 2.0) -> dict:
    """GET a JSON document; raises OSError (URLError) when the service does not answer."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def java_major(java: str) -> int:
    """The major version of a java executable, or a StackError saying how to install one."""
    exe = shutil.which(java) if os.sep not in java else (java if Path(java).exists() else None)
    if exe is None:
        raise StackError(
            f"Java was not found ({java!r} is not on PATH). The stack's services are JVMs and need "
            f"Java {MIN_JAVA} or newer: install it (Debian: `apt-get install openjdk-17-jdk-headless`) "
            "or set JAVA_HOME to a JDK folder."
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"Could not read the Java version from `{exe} -version`:\n{out}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


@dataclass
class Service:
    """One service of the stack: where it listens, how it starts, how we know it is healthy."""

    name: str
    host: str
    port: int
    env_var: str  # the setting that moves it, named in port errors
    extra_ports: tuple[int, ...] = ()

    def process(self, cfg: Settings) -> ManagedProcess:
        return ManagedProcess(self.name, cfg.stack_home)

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.extra_ports)

    def prepare(self, cfg: Settings) -> None:
        """Write config files and initialise storage; runs before every start."""

    def command(self, cfg: Settings) -> list[str]:
        raise NotImplementedError

    def environment(self, cfg: Settings) -> dict[str, str]:
        return {}

    def healthy(self, cfg: Settings) -> bool:
        raise NotImplementedError

    def after_start(self, cfg: Settings) -> None:
        """Work that needs the running service (creating the events topic, say)."""

    def hint(self) -> str:
        return "See the full log for details, fix the cause and run `python -m lib stack up` again."


def _jars(cfg: Settings, group: str) -> str:
    folder = cfg.jars_dir / group
    if not folder.is_dir() or not any(folder.glob("*.jar")):
        raise StackError(
            f"The {group} jars are missing from {folder}. They are fetched by Maven: run `make jars` "
            "(or `make up`, which does it for you), then try again."
        )
    return f"{folder}/*"


class KafkaBroker(Service):
    """Apache Kafka 4 in KRaft mode: one process that is both broker and controller."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.kafka_address
        super().__init__("kafka", addr.host, addr.port, "KAFKA_BOOTSTRAP_SERVERS", (addr.port + 1,))

    def home(self, cfg: Settings) -> Path:
        return cfg.stack_home / "kafka"

    def prepare(self, cfg: Settings) -> None:
        home = self.home(cfg)
        data = home / "data"
        data.mkdir(parents=True, exist_ok=True)
        controller = self.port + 1
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{controller}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(cfg.events_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created on purpose (with their partition count), never by a typo.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
        }
        (home / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (home / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.out.type = Console\nappender.out.name = out\n"
            "appender.out.layout.type = PatternLayout\nappender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = out\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
            "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        )
        if not (data / "meta.properties").exists():
            # KRaft storage is formatted once; later starts reuse it with its cluster id.
            out = subprocess.run(
                [cfg.java, "-cp", _jars(cfg, "kafka"), "kafka.tools.StorageTool", "format",
                 "-t", _kafka_cluster_id("roman-workbook"), "-c", str(home / "server.properties")],
                capture_output=True, text=True, check=False,
            )
            if out.returncode != 0:
                raise StackError(f"Formatting Kafka's storage in {data} failed:\n{out.stdout}{out.stderr}")

    def command(self, cfg: Settings) -> list[str]:
        home = self.home(cfg)
        return [
            cfg.java, "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp", _jars(cfg, "kafka"), "kafka.Kafka", str(home / "server.properties"),
        ]

    def healthy(self, cfg: Settings) -> bool:
        from lib.topics import broker_answers

        return broker_answers(cfg.kafka_bootstrap_servers)

    def after_start(self, cfg: Settings) -> None:
        from lib.topics import ensure_topic

        ensure_topic(cfg.kafka_bootstrap_servers, cfg.events_topic, cfg.events_partitions)


def _kafka_cluster_id(seed: str) -> str:
    """A stable 22-character base64 cluster id (Kafka wants a UUID in that form)."""
    import base64
    import uuid

    raw = uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class CatalogServer(Service):
    """Iceberg's REST catalog server, backed by a SQLite file, with a local warehouse folder.

    Started through jars/catalog's LoopbackCatalogServer: the stock server's backend, bound to
    127.0.0.1 only and without SO_REUSEPORT (which would let a stale copy share the port).
    """

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.catalog_address
        super().__init__("iceberg-rest", addr.host, addr.port, "ICEBERG_REST_URI")

    def prepare(self, cfg: Settings) -> None:
        (cfg.stack_home / "catalog").mkdir(parents=True, exist_ok=True)
        if cfg.iceberg_warehouse.startswith("file:"):
            Path(cfg.iceberg_warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Settings) -> list[str]:
        return [
            cfg.java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:ReservedCodeCacheSize=32m", "-Xss512k",
            "-cp", _jars(cfg, "catalog"), "workbook.catalog.LoopbackCatalogServer",
        ]

    def environment(self, cfg: Settings) -> dict[str, str]:
        return {
            # Every CATALOG_* variable becomes a catalog property (CATALOG_REST_PORT -> rest.port).
            "CATALOG_REST_HOST": self.host,
            "CATALOG_REST_PORT": str(self.port),
            "CATALOG_URI": f"jdbc:sqlite:{cfg.stack_home / 'catalog' / 'catalog.db'}",
            "CATALOG_WAREHOUSE": cfg.iceberg_warehouse,
        }

    def healthy(self, cfg: Settings) -> bool:
        try:
            return "defaults" in http_json(f"{cfg.iceberg_rest_uri}/v1/config")
        except (OSError, ValueError):
            return False


class FlinkProcess(Service):
    """A jobmanager or taskmanager of the Flink session cluster, from pyflink's own scripts."""

    def __init__(self, cfg: Settings, role: str) -> None:
        addr = cfg.flink_address
        self.role = role
        extra = (6123, 6124) if role == "jobmanager" else ()
        super().__init__(f"flink-{role}", addr.host, addr.port, "FLINK_REST_URL", extra)

    def ports(self) -> tuple[int, ...]:
        return self.extra_ports if self.role == "taskmanager" else super().ports()

    def command(self, cfg: Settings) -> list[str]:
        from lib.flink_cluster import flink_script

        return ["bash", str(flink_script(cfg, f"{self.role}.sh")), "start-foreground"]

    def prepare(self, cfg: Settings) -> None:
        from lib.flink_cluster import write_flink_conf

        write_flink_conf(cfg)

    def environment(self, cfg: Settings) -> dict[str, str]:
        from lib.flink_cluster import flink_environment

        return flink_environment(cfg)

    def healthy(self, cfg: Settings) -> bool:
        try:
            overview = http_json(f"{cfg.flink_rest_url}/overview")
        except (OSError, ValueError):
            return False
        return self.role == "jobmanager" or overview.get("taskmanagers", 0) >= 1

    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.role == "jobmanager" else f"{self.host} (rpc)"


class RomanService(Service):
    """The Roman Numeral Service (lib/service.py), which publishes an event per request."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.service_address
        super().__init__("roman-service", addr.host, addr.port, "ROMAN_SERVICE_URL")

    def command(self, cfg: Settings) -> list[str]:
        return [sys.executable, "-m", "lib.service", "--host", self.host, "--port", str(self.port)]

    def environment(self, cfg: Settings) -> dict[str, str]:
        return {"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PYTHONUNBUFFERED": "1"}

    def healthy(self, cfg: Settings) -> bool:
        try:
            return http_json(f"{cfg.roman_service_url}/health").get("status") == "ok"
        except (OSError, ValueError):
            return False


def services(cfg: Settings | None = None) -> list[Service]:
    """The stack in start order."""
    cfg = cfg or settings()
    return [
        KafkaBroker(cfg),
        RomanService(cfg),
        CatalogServer(cfg),
        FlinkProcess(cfg, "jobmanager"),
        FlinkProcess(cfg, "taskmanager"),
    ]


def select(names: Iterable[str] | None, cfg: Settings) -> list[Service]:
    """The named services (all when None), or a StackError listing the valid names."""
    every = services(cfg)
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
                f"`python -m lib stack down` if it is a stack left from another checkout), or move "
                f"{service.name} elsewhere by setting {service.env_var}."
            )


def _wait_healthy(service: Service, proc: ManagedProcess, cfg: Settings, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        code = proc.exit_code()
        if code is not None:
            raise StackError(
                f"{service.name} exited during start-up (exit code {code}). Last lines of "
                f"{proc.log_file}:\n{log_tail(proc.log_file)}\n{service.hint()}"
            )
        if service.healthy(cfg):
            return time.monotonic() - started
        time.sleep(0.25)
    proc.stop()
    raise StackError(
        f"{service.name} did not become healthy within {timeout:.0f}s at {service.address()}. "
        f"Last lines of {proc.log_file}:\n{log_tail(proc.log_file)}\n{service.hint()}"
    )


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


def up(names: Iterable[str] | None = None, timeout: float = HEALTH_TIMEOUT_S, quiet: bool = False) -> dict[str, str]:
    """Start every service that is not running and wait until all are healthy.

    Returns {service: "started in N s" | "already running"}. On failure the services this call
    started are stopped again, so a failed `up` leaves no half-started stack behind.
    """
    from tqdm import tqdm

    cfg = settings()
    chosen = select(names, cfg)
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


def down(names: Iterable[str] | None = None) -> dict[str, str]:
    """Stop the services (all by default, in reverse order) and check their ports are free."""
    cfg = settings()
    report: dict[str, str] = {}
    stopped: list[Service] = []
    for service in reversed(select(names, cfg)):
        if service.process(cfg).stop():
            stopped.append(service)
        report[service.name] = "stopped" if service in stopped else "not running"
    deadline = time.monotonic() + 15
    for service in stopped:
        for port in service.ports():
            while not port_is_free(service.host, port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not port_is_free(service.host, port):
                raise StackError(
                    f"{service.name} was stopped but port {service.host}:{port} is still taken by "
                    f"{port_owner(port)}; stop that process by hand."
                )
    return report


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    pid: int | None
    address: str
    healthy: bool


def status(names: Iterable[str] | None = None) -> list[ServiceStatus]:
    """One row per service: its pid (if we started it), address and whether it answers now."""
    cfg = settings()
    return [
        ServiceStatus(s.name, s.process(cfg).pid(), s.address(), s.healthy(cfg))
        for s in select(names, cfg)
    ]


def running(cfg: Settings | None = None) -> set[str]:
    """The services whose process this stack started and that still run."""
    cfg = cfg or settings()
    return {s.name for s in services(cfg) if s.process(cfg).pid() is not None}


def is_up(cfg: Settings | None = None) -> bool:
    """True when every service answers (whoever started it: us, docker-compose or a cluster)."""
    cfg = cfg or settings()
    return all(s.healthy(cfg) for s in services(cfg))


def require_up() -> None:
    """Raise a StackError that says how to start the stack when any service is down."""
    cfg = settings()
    down_ = [s for s in services(cfg) if not s.healthy(cfg)]
    if down_:
        names = ", ".join(f"{s.name} ({s.address()})" for s in down_)
        raise StackError(
            f"The stack is not running: {names} did not answer. Start it with `make up` "
            "(or `.venv/bin/python -m lib stack up`), or point the settings at a running stack "
            "(KAFKA_BOOTSTRAP_SERVERS, ICEBERG_REST_URI, FLINK_REST_URL)."
        )


def format_status(rows: list[ServiceStatus]) -> str:
    from tabulate import tabulate

    table = [(r.service, r.pid or "-", r.address, "yes" if r.healthy else "no") for r in rows]
    return tabulate(table, headers=["service", "pid", "address", "healthy"])
