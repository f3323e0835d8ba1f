"""Every setting of the workbook in one place.

Each value comes from an environment variable with an embedded default, so the same code runs
against the embedded stack (the defaults), docker-compose or a real cluster. No endpoint is
written anywhere else in the project.

One path: `settings()` reads the environment once, at an edge (the CLI, a notebook's setup
cell, a test fixture, the service's process), and the resulting `Settings` is passed down to
every function that needs an address; no module below the edges reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lib.errors import ConfigError

#: The repository root: lib/ lives directly under it.
ROOT = Path(__file__).resolve().parent.parent

# Environment variable names, each with its default beside it.
KAFKA_BOOTSTRAP_SERVERS = ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
EVENTS_TOPIC = ("EVENTS_TOPIC", "roman-conversions")
EVENTS_PARTITIONS = ("EVENTS_PARTITIONS", "3")
ICEBERG_REST_URI = ("ICEBERG_REST_URI", "http://127.0.0.1:8181")
ICEBERG_WAREHOUSE = ("ICEBERG_WAREHOUSE", "")  # empty: <STACK_HOME>/warehouse, or s3://<S3_BUCKET>/ in S3 mode
# Where the warehouse lives: "file" (the local file system) or "s3" (the S3 server at S3_ENDPOINT).
WAREHOUSE = ("WAREHOUSE", "file")
S3_ENDPOINT = ("S3_ENDPOINT", "http://127.0.0.1:9000")
S3_BUCKET = ("S3_BUCKET", "warehouse")
S3_ACCESS_KEY_ID = ("S3_ACCESS_KEY_ID", "workbook")
S3_SECRET_ACCESS_KEY = ("S3_SECRET_ACCESS_KEY", "workbook-secret")  # the embedded server's; never a real one
S3_REGION = ("S3_REGION", "us-east-1")
ROMAN_SERVICE_URL = ("ROMAN_SERVICE_URL", "http://127.0.0.1:8000")
FLINK_REST_URL = ("FLINK_REST_URL", "http://127.0.0.1:8081")
FLINK_RPC_PORT = ("FLINK_RPC_PORT", "6123")  # the jobmanager's RPC (Pekko) port
FLINK_BLOB_PORT = ("FLINK_BLOB_PORT", "6124")  # the jobmanager's blob server (jars, Python files)
STACK_HOME = ("STACK_HOME", str(ROOT / ".stack"))
JARS_DIR = ("JARS_DIR", str(ROOT / "build" / "jars"))
FLINK_VENV = ("FLINK_VENV", str(ROOT / ".venv-flink"))
AIRFLOW_VENV = ("AIRFLOW_VENV", str(ROOT / ".venv-airflow"))  # Airflow 3.3.2 (`make airflow`), for dags/
ALERT_WEBHOOK_URL = ("ALERT_WEBHOOK_URL", "")  # empty: alerts go to stderr and runs/alerts.log only
RUNS_DIR = ("RUNS_DIR", str(ROOT / "runs"))  # executed notebooks, run history, alerts log, scheduler lock
SPARK_DRIVER_MEMORY = ("SPARK_DRIVER_MEMORY", "2g")
# Cluster mode: `stack up` also starts a Spark standalone master and worker and a second Flink
# taskmanager, and the layer jobs run on the Spark cluster instead of in-process (local[2]).
CLUSTER = ("CLUSTER", "0")
# Where Spark jobs run: empty means local[2], or spark://127.0.0.1:7077 in cluster mode; any
# spark:// URL points the jobs at a real cluster (with its web UI at SPARK_MASTER_WEBUI_URL).
SPARK_MASTER = ("SPARK_MASTER", "")
CLUSTER_SPARK_MASTER = "spark://127.0.0.1:7077"  # the master cluster mode starts
SPARK_MASTER_WEBUI_URL = ("SPARK_MASTER_WEBUI_URL", "http://127.0.0.1:8080")
# The address executors reach the driver at (the notebook's process): its host name in a container.
SPARK_DRIVER_HOST = ("SPARK_DRIVER_HOST", "127.0.0.1")
SPARK_SHUFFLE_PARTITIONS = ("SPARK_SHUFFLE_PARTITIONS", "4")
JAVA_HOME = ("JAVA_HOME", "")
# Seconds the service waits for Kafka to acknowledge an event before it answers 503.
SERVICE_ACK_TIMEOUT_S = ("SERVICE_ACK_TIMEOUT_S", "5")
# The event schema version the service writes (lib/service/events.py): 1, or 2 with the client app.
EVENT_SCHEMA_VERSION = ("EVENT_SCHEMA_VERSION", "1")


#: The AWS SDK (2.30+) sends and checks CRC checksums by default, which some S3-compatible servers
#: refuse; Iceberg 1.11 has no property for it, so every JVM that may use S3FileIO gets these flags.
S3_CHECKSUM_FLAGS = ("-Daws.requestChecksumCalculation=when_required", "-Daws.responseChecksumValidation=when_required")


def _env(pair: tuple[str, str]) -> str:
    name, default = pair
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class HostPort:
    """A service address split into the parts sockets and health checks need."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _url_address(url: str) -> HostPort:
    parsed = urlparse(url)
    if not parsed.hostname or not parsed.port:
        raise ConfigError(f"{url!r} must be an absolute URL with a host and a port, e.g. http://127.0.0.1:8181")
    return HostPort(parsed.hostname, parsed.port)


def _bootstrap_address(servers: str) -> HostPort:
    first = servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS={servers!r} must look like host:port[,host:port]")
    return HostPort(host, int(port))


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; build it with `settings()`."""

    kafka_bootstrap_servers: str
    events_topic: str
    events_partitions: int
    iceberg_rest_uri: str
    iceberg_warehouse: str
    roman_service_url: str
    flink_rest_url: str
    flink_rpc_port: int
    flink_blob_port: int
    alert_webhook_url: str
    runs_dir: Path
    stack_home: Path
    jars_dir: Path
    flink_venv: Path
    spark_driver_memory: str
    spark_shuffle_partitions: int
    java_home: str
    catalog_name: str = field(default="lake")
    service_ack_timeout_s: int = 5
    event_schema_version: int = 1
    warehouse: str = "file"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_bucket: str = "warehouse"
    s3_access_key_id: str = "workbook"
    s3_secret_access_key: str = "workbook-secret"
    s3_region: str = "us-east-1"
    cluster: bool = False
    spark_master: str = "local[2]"
    spark_master_webui_url: str = "http://127.0.0.1:8080"
    spark_driver_host: str = "127.0.0.1"
    airflow_venv: Path = ROOT / ".venv-airflow"

    @property
    def spark_master_address(self) -> HostPort:
        """The standalone master's RPC address: SPARK_MASTER's when it is a spark:// URL, else where
        cluster mode would start it (so `stack down` can still find a master left running)."""
        url = self.spark_master if self.spark_master.startswith("spark://") else CLUSTER_SPARK_MASTER
        return _url_address(url.replace("spark://", "http://", 1))

    @property
    def spark_webui_address(self) -> HostPort:
        return _url_address(self.spark_master_webui_url)

    @property
    def taskmanagers(self) -> int:
        """Flink taskmanagers the embedded stack starts: two in cluster mode, else one."""
        return 2 if self.cluster else 1

    @property
    def s3_address(self) -> HostPort:
        return _url_address(self.s3_endpoint)

    @property
    def file_io_properties(self) -> dict[str, str]:
        """Iceberg's FileIO properties for the warehouse: S3FileIO on the S3 server in S3 mode, none
        on the file system. Every client sets them itself (the REST catalog does not hand them out)."""
        if self.warehouse != "s3":
            return {}
        return {
            "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            "s3.endpoint": self.s3_endpoint,
            "s3.path-style-access": "true",
            "s3.access-key-id": self.s3_access_key_id,
            "s3.secret-access-key": self.s3_secret_access_key,
            "client.region": self.s3_region,
        }

    @property
    def kafka_address(self) -> HostPort:
        return _bootstrap_address(self.kafka_bootstrap_servers)

    @property
    def catalog_address(self) -> HostPort:
        return _url_address(self.iceberg_rest_uri)

    @property
    def flink_address(self) -> HostPort:
        return _url_address(self.flink_rest_url)

    @property
    def service_address(self) -> HostPort:
        return _url_address(self.roman_service_url)

    @property
    def java(self) -> str:
        """The java executable: JAVA_HOME's when set, else the one on PATH."""
        return str(Path(self.java_home) / "bin" / "java") if self.java_home else "java"


def _positive(pair: tuple[str, str]) -> int:
    value = _env(pair)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{pair[0]}={value!r} must be a positive integer (default {pair[1]})")
    return int(value)


def settings() -> Settings:
    """Read the environment now; call it at an edge and pass the result down."""
    stack_home = Path(_env(STACK_HOME)).resolve()
    mode = _env(WAREHOUSE).lower()
    if mode not in ("file", "s3"):
        raise ConfigError(f"WAREHOUSE={mode!r}: use file (the default, the local file system) or s3 (the S3 server)")
    bucket = _env(S3_BUCKET)
    default_warehouse = f"s3://{bucket}/" if mode == "s3" else (stack_home / "warehouse").as_uri()
    warehouse = _env(ICEBERG_WAREHOUSE) or default_warehouse
    partitions = _positive(EVENTS_PARTITIONS)
    cluster = _env(CLUSTER).lower()
    if cluster not in ("0", "1", "false", "true", "no", "yes"):
        raise ConfigError(
            f"CLUSTER={cluster!r}: use 1 (Spark standalone and two Flink taskmanagers) or 0 (the default)")
    clustered = cluster in ("1", "true", "yes")
    master = _env(SPARK_MASTER) or (CLUSTER_SPARK_MASTER if clustered else "local[2]")
    if not (master.startswith("local") or master.startswith("spark://")):
        raise ConfigError(f"SPARK_MASTER={master!r}: use local[N] or spark://host:port (a standalone master)")
    shuffle = _positive(SPARK_SHUFFLE_PARTITIONS)
    version = _env(EVENT_SCHEMA_VERSION)
    if version not in ("1", "2"):
        raise ConfigError(f"EVENT_SCHEMA_VERSION={version!r}: use 1 (the default) or 2 (events name their client app)")
    return Settings(
        kafka_bootstrap_servers=_env(KAFKA_BOOTSTRAP_SERVERS),
        events_topic=_env(EVENTS_TOPIC),
        events_partitions=partitions,
        iceberg_rest_uri=_env(ICEBERG_REST_URI).rstrip("/"),
        iceberg_warehouse=warehouse,
        roman_service_url=_env(ROMAN_SERVICE_URL).rstrip("/"),
        flink_rest_url=_env(FLINK_REST_URL).rstrip("/"),
        flink_rpc_port=_positive(FLINK_RPC_PORT),
        flink_blob_port=_positive(FLINK_BLOB_PORT),
        alert_webhook_url=_env(ALERT_WEBHOOK_URL),
        runs_dir=Path(_env(RUNS_DIR)).resolve(),
        stack_home=stack_home,
        jars_dir=Path(_env(JARS_DIR)).resolve(),
        flink_venv=Path(_env(FLINK_VENV)).resolve(),
        spark_driver_memory=_env(SPARK_DRIVER_MEMORY),
        spark_shuffle_partitions=shuffle,
        java_home=_env(JAVA_HOME),
        service_ack_timeout_s=_positive(SERVICE_ACK_TIMEOUT_S),
        event_schema_version=int(version),
        warehouse=mode,
        s3_endpoint=_env(S3_ENDPOINT).rstrip("/"),
        s3_bucket=bucket,
        s3_access_key_id=_env(S3_ACCESS_KEY_ID),
        s3_secret_access_key=_env(S3_SECRET_ACCESS_KEY),
        s3_region=_env(S3_REGION),
        cluster=clustered,
        spark_master=master,
        spark_master_webui_url=_env(SPARK_MASTER_WEBUI_URL).rstrip("/"),
        spark_driver_host=_env(SPARK_DRIVER_HOST),
        airflow_venv=Path(_env(AIRFLOW_VENV)).resolve(),
    )
