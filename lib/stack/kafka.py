"""Apache Kafka 4 in KRaft mode, from Maven Central jars: one process, broker and controller.

Its storage is formatted once with a stable cluster id; later starts reuse it. The events topic
is created on purpose, with its partition count, once the broker answers.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from lib.config import Settings
from lib.errors import StackError
from lib.kafka import broker_answers, ensure_topic
from lib.stack.base import Service, jars


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
                [cfg.java, "-cp", jars(cfg, "kafka"), "kafka.tools.StorageTool", "format",
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
            "-cp", jars(cfg, "kafka"), "kafka.Kafka", str(home / "server.properties"),
        ]

    def healthy(self, cfg: Settings) -> bool:
        return broker_answers(cfg.kafka_bootstrap_servers)

    def after_start(self, cfg: Settings) -> None:
        ensure_topic(cfg.kafka_bootstrap_servers, cfg.events_topic, cfg.events_partitions)


def _kafka_cluster_id(seed: str) -> str:
    """A stable 22-character base64 cluster id (Kafka wants a UUID in that form)."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
