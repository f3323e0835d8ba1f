"""Every setting of the workbook in one place.

Each value comes from an environment variable with an embedded default, so the same code runs
against the embedded stack (the defaults), docker-compose or a real cluster. No endpoint is
written anywhere else in the project.

One path: `settings()` reads the environment once, at an edge (the CLI, a notebook's setup
cell, a test fixture, the service's process), and the resulting `Settings` is passed down to
every function that needs an address; no module below the edges reads the environment.
"""

from __future__ import annotations

import math
import os
import re
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
WAREHOUSE = ("WAREHOUSE", "s3")
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
AIRFLOW_URL = ("AIRFLOW_URL", "http://127.0.0.1:8088")  # `lib airflow up`: its api-server, UI and REST API
ALERT_WEBHOOK_URL = ("ALERT_WEBHOOK_URL", "")  # empty: alerts go to stderr and runs/alerts.log only
# Seconds one alert may spend on the webhook in all (connect, send, answer): the scheduler waits that long.
ALERT_WEBHOOK_TIMEOUT_S = ("ALERT_WEBHOOK_TIMEOUT_S", "10")
RUNS_DIR = ("RUNS_DIR", str(ROOT / "runs"))  # executed notebooks, run history, alerts log, scheduler lock
SPARK_DRIVER_MEMORY = ("SPARK_DRIVER_MEMORY", "2g")
# Cluster mode: `stack up` also starts a Spark standalone master and worker and a second Flink
# taskmanager, and the layer jobs run on the Spark cluster instead of in-process (local[2]).
CLUSTER = ("CLUSTER", "0")
# Who runs the services: `embedded` (the default) starts and stops them as local processes; `external`
# (docker-compose, a real cluster) starts and stops none, and only checks that each one answers.
STACK = ("STACK", "embedded")
# Where Spark jobs run: empty means local[2], or spark://127.0.0.1:7077 in cluster mode; any
# spark:// URL points the jobs at a real cluster (with its web UI at SPARK_MASTER_WEBUI_URL).
SPARK_MASTER = ("SPARK_MASTER", "")
CLUSTER_SPARK_MASTER = "spark://127.0.0.1:7077"  # the master cluster mode starts
SPARK_MASTER_WEBUI_URL = ("SPARK_MASTER_WEBUI_URL", "http://127.0.0.1:8080")
# The address executors reach the driver at (the notebook's process): its host name in a container.
SPARK_DRIVER_HOST = ("SPARK_DRIVER_HOST", "127.0.0.1")
# The Python the executors run the UDFs on: empty means the driver's own, right when both share a machine
# (local mode, the embedded cluster); in containers, the worker image's interpreter.
SPARK_EXECUTOR_PYTHON = ("SPARK_EXECUTOR_PYTHON", "")
SPARK_SHUFFLE_PARTITIONS = ("SPARK_SHUFFLE_PARTITIONS", "4")
# The driver JVM's JIT: `quick` (C1 only: a job's JVM lives a minute) or `full` (C1 then C2); lib/medallion/jvm.py.
SPARK_JIT = ("SPARK_JIT", "quick")
JAVA_HOME = ("JAVA_HOME", "")
# Seconds the service waits for Kafka to acknowledge an event before it answers 503.
SERVICE_ACK_TIMEOUT_S = ("SERVICE_ACK_TIMEOUT_S", "5")
# The event schema version the service writes (lib/contract/events.py): 1, or 2 with the client app.
EVENT_SCHEMA_VERSION = ("EVENT_SCHEMA_VERSION", "1")
# The interpreter Airflow's tasks run the project's runner with, and the DAGs' timings (dags/).
WORKBOOK_PYTHON = ("WORKBOOK_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
WORKBOOK_RETRY_DELAY_S = ("WORKBOOK_RETRY_DELAY_S", "30")
WORKBOOK_WAIT_TIMEOUT_S = ("WORKBOOK_WAIT_TIMEOUT_S", "7200")
WORKBOOK_WAIT_POKE_S = ("WORKBOOK_WAIT_POKE_S", "30")
# Table maintenance (`maintain`, daily): what expire_snapshots keeps, and the age an unreferenced file must
# reach before remove_orphan_files may delete it (a writer's files are unreferenced until it commits).
MAINTAIN_KEEP_SNAPSHOTS = ("MAINTAIN_KEEP_SNAPSHOTS", "20")
MAINTAIN_SNAPSHOT_AGE_S = ("MAINTAIN_SNAPSHOT_AGE_S", str(5 * 24 * 3600))  # Iceberg's own default: 5 days
MAINTAIN_ORPHAN_AGE_S = ("MAINTAIN_ORPHAN_AGE_S", str(3 * 24 * 3600))  # Iceberg's own default: 3 days
# The drills' and tests' crash and race points (lib/faults.py); empty: none.
WORKBOOK_CRASH_AT = ("WORKBOOK_CRASH_AT", "")
WORKBOOK_RENDEZVOUS = ("WORKBOOK_RENDEZVOUS", "")
_RENDEZVOUS = re.compile(r"(?P<point>[a-z_.]+)@(?P<directory>.+)#(?P<parties>[1-9][0-9]*)")


#: The AWS SDK (2.30+) sends and checks CRC checksums by default, which some S3-compatible servers
#: refuse; Iceberg 1.11 has no property for it, so every JVM that may use S3FileIO gets these flags.
S3_CHECKSUM_FLAGS = ("-Daws.requestChecksumCalculation=when_required", "-Daws.responseChecksumValidation=when_required")


#: Kafka's legal topic names (its Topic.validate): 1 to 249 of these characters, and not "." or "..".
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
#: A host name, an IPv4 address or a bracketed IPv6 address.
_HOST = r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])"
_BOOTSTRAP = re.compile(rf"{_HOST}:[0-9]{{1,5}}(?:\s*,\s*{_HOST}:[0-9]{{1,5}})*")
#: The characters of a URL (RFC 3986) less the single quote: what may sit inside a SQL string literal.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+")
_URL_RULE = "only URL characters: no quote, backslash, space or non-ASCII character (percent-encode them)"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: An SQL identifier that needs no quoting, in Spark and Flink alike.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: S3's bucket names: 3 to 63 lower-case letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,64}")
#: Printable ASCII without the characters that end or escape a SQL string literal (for the S3 keys).
_LITERAL = re.compile(r"[\x21-\x7e]+")
_NOT_IN_LITERAL = set("'\"`\\")
#: The longest ALERT_WEBHOOK_TIMEOUT_S: the scheduler waits that long for a webhook that does not answer.
MAX_ALERT_WEBHOOK_TIMEOUT_S = 300.0


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
    warehouse: str = "s3"  # as settings() reads WAREHOUSE; "file" keeps the tables on local files
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_bucket: str = "warehouse"
    s3_access_key_id: str = "workbook"
    s3_secret_access_key: str = "workbook-secret"
    s3_region: str = "us-east-1"
    cluster: bool = False
    external: bool = False  # STACK=external: the services run elsewhere; nothing is started or stopped here
    spark_master: str = "local[2]"
    spark_master_webui_url: str = "http://127.0.0.1:8080"
    spark_driver_host: str = "127.0.0.1"
    spark_executor_python: str = ""
    spark_jit: str = "quick"
    airflow_venv: Path = ROOT / ".venv-airflow"
    airflow_url: str = "http://127.0.0.1:8088"
    alert_webhook_timeout_s: float = 10.0
    workbook_python: str = WORKBOOK_PYTHON[1]
    retry_delay_s: float = 30.0
    wait_timeout_s: float = 7200.0
    wait_poke_s: float = 30.0
    maintain_keep_snapshots: int = 20
    maintain_snapshot_age_s: float = 5 * 24 * 3600.0
    maintain_orphan_age_s: float = 3 * 24 * 3600.0
    crash_at: str = ""
    rendezvous: tuple[str, str, int] | None = None  # (point, directory, parties)

    def __post_init__(self) -> None:
        """Every field that is written into Spark or Flink SQL (as a literal or an identifier) is checked
        here, so no value, from the environment or from `replace()`, can break out of its quotes."""
        _check_sql_settings(self)

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
    def airflow_address(self) -> HostPort:
        return _url_address(self.airflow_url)

    @property
    def service_address(self) -> HostPort:
        return _url_address(self.roman_service_url)

    @property
    def java(self) -> str:
        """The java executable: JAVA_HOME's when set, else the one on PATH."""
        return str(Path(self.java_home) / "bin" / "java") if self.java_home else "java"


def is_topic_name(topic: str) -> bool:
    """Kafka's rule for a topic's name (the events topic's, a stream job's, a test's own)."""
    return bool(_TOPIC.fullmatch(topic)) and topic not in (".", "..")


def _check_topic(topic: str) -> None:
    if not is_topic_name(topic):
        raise ConfigError(
            f"EVENTS_TOPIC={topic!r} is not a legal Kafka topic name (it is also written into Spark and Flink "
            "SQL): use 1 to 249 letters, digits, '.', '_' or '-' (not '.' or '..' alone), e.g. roman-conversions")


def _check_bootstrap(servers: str) -> None:
    ports = [int(p) for p in re.findall(r":([0-9]+)(?=\s*(?:,|$))", servers)]
    if not _BOOTSTRAP.fullmatch(servers) or not all(0 < p < 65536 for p in ports):
        raise ConfigError(
            f"KAFKA_BOOTSTRAP_SERVERS={servers!r} must be host:port[,host:port] (it is written into Flink SQL): "
            "host names of letters, digits, '.', '_' or '-' (or [IPv6]) and ports 1-65535, e.g. 127.0.0.1:9092")


def _is_http_url(url: str) -> bool:
    """http or https, a host, and a port from 1 to 65535 when one is given."""
    try:
        parsed = urlparse(url)
        return parsed.scheme in ("http", "https") and bool(parsed.hostname) and (parsed.port is None or parsed.port > 0)
    except ValueError:  # a port that is not a number or out of range, a broken [IPv6] host
        return False


def _check_http_url(name: str, url: str, example: str) -> None:
    """An http(s) URL with a host (and a valid port when it names one) that fits inside a SQL literal."""
    if not _is_http_url(url) or not _URL_CHARS.fullmatch(url):
        raise ConfigError(f"{name}={url!r} must be an http:// or https:// URL with a host, a port from 1 to 65535 "
                          f"when it gives one, and {_URL_RULE}; e.g. {example}")


def _check_sql_settings(cfg: Settings) -> None:
    """The rules of the settings that reach SQL; each message names the variable, the rule and an example."""
    _check_topic(cfg.events_topic)
    _check_bootstrap(cfg.kafka_bootstrap_servers)
    _check_http_url("ICEBERG_REST_URI", cfg.iceberg_rest_uri, "http://127.0.0.1:8181")
    _check_http_url("S3_ENDPOINT", cfg.s3_endpoint, "http://127.0.0.1:9000")
    if not (_SCHEME.match(cfg.iceberg_warehouse) and _URL_CHARS.fullmatch(cfg.iceberg_warehouse)):
        raise ConfigError(
            f"ICEBERG_WAREHOUSE={cfg.iceberg_warehouse!r} must be a URI with a scheme and {_URL_RULE} (it is "
            "written into Flink SQL); e.g. s3://warehouse/ or file:///data/warehouse, or unset it for the default")
    if not _IDENTIFIER.fullmatch(cfg.catalog_name):
        raise ConfigError(f"catalog_name={cfg.catalog_name!r} is a SQL identifier: use letters, digits and '_', "
                          "not starting with a digit, e.g. lake")
    if not _BUCKET.fullmatch(cfg.s3_bucket) or ".." in cfg.s3_bucket:
        raise ConfigError(f"S3_BUCKET={cfg.s3_bucket!r} is not a legal S3 bucket name: use 3 to 63 lower-case "
                          "letters, digits, '.' or '-', starting and ending with a letter or digit, e.g. warehouse")
    if not _REGION.fullmatch(cfg.s3_region):
        raise ConfigError(f"S3_REGION={cfg.s3_region!r} must be lower-case letters, digits and '-', e.g. us-east-1")
    for name, value in (("S3_ACCESS_KEY_ID", cfg.s3_access_key_id), ("S3_SECRET_ACCESS_KEY", cfg.s3_secret_access_key)):
        if not _LITERAL.fullmatch(value) or _NOT_IN_LITERAL & set(value):
            # The value is a credential: the message never repeats it.
            raise ConfigError(f"{name} (not shown) must be printable ASCII without spaces, quotes (' \" `) or "
                              "backslashes: it is written into Flink SQL as a string literal")


def redact_url(url: str) -> str:
    """The URL up to its host and port, "..." for the rest: a webhook's path and user part are often its
    secret (a chat webhook's token), so logs and messages show only where it points."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _, at, host = authority.rpartition("@")
    shown = (f"{scheme}://" if sep else "") + ("...@" if at else "") + host
    return shown + ("/..." if len(authority) < len(rest) else "")


def check_webhook(url: str) -> None:
    """ALERT_WEBHOOK_URL, when set, must be something httpx can POST to: checked now rather than at the
    first alert, which is the worst moment to learn the webhook never worked."""
    if not _is_http_url(url) or not url.isascii() or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError(
            f"ALERT_WEBHOOK_URL={redact_url(url)!r} (the rest not shown) must be an http:// or https:// URL with a "
            "host, a port from 1 to 65535 when it gives one, and no space or non-ASCII character, e.g. "
            "https://hooks.example.com/alerts; or unset it to alert on stderr and runs/alerts.log only")


def _seconds(pair: tuple[str, str], most: float) -> float:
    value = _env(pair)
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= most:  # also refuses nan and inf
        raise ConfigError(f"{pair[0]}={value!r} must be a number of seconds above 0 and at most {most:g} "
                          f"(default {pair[1]})")
    return seconds


def _rendezvous() -> tuple[str, str, int] | None:
    spec = _env(WORKBOOK_RENDEZVOUS)
    if not spec:
        return None
    found = _RENDEZVOUS.fullmatch(spec)
    if found is None:
        raise ConfigError(f"WORKBOOK_RENDEZVOUS={spec!r}: write it as <point>@<directory>#<parties>, for example "
                          "bronze.before_events@/tmp/race#2 (or unset it)")
    return found["point"], found["directory"], int(found["parties"])


def _orphan_age() -> float:
    """MAINTAIN_ORPHAN_AGE_S: Iceberg's remove_orphan_files procedure refuses less than a day (a shorter age
    could delete a running writer's uncommitted files), so the setting does too, before any job starts."""
    seconds = _seconds(MAINTAIN_ORPHAN_AGE_S, 365 * 24 * 3600)
    if seconds < 24 * 3600:
        raise ConfigError(f"MAINTAIN_ORPHAN_AGE_S={_env(MAINTAIN_ORPHAN_AGE_S)!r} is less than a day (86400): "
                          "Iceberg's remove_orphan_files refuses it, since a shorter age could delete files a running "
                          f"writer has not committed yet (default {MAINTAIN_ORPHAN_AGE_S[1]})")
    return seconds


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
        raise ConfigError(f"WAREHOUSE={mode!r}: use s3 (the default, the S3 server) or file (the local file system)")
    bucket = _env(S3_BUCKET)
    default_warehouse = f"s3://{bucket}/" if mode == "s3" else (stack_home / "warehouse").as_uri()
    warehouse = _env(ICEBERG_WAREHOUSE) or default_warehouse
    partitions = _positive(EVENTS_PARTITIONS)
    cluster = _env(CLUSTER).lower()
    if cluster not in ("0", "1", "false", "true", "no", "yes"):
        raise ConfigError(
            f"CLUSTER={cluster!r}: use 1 (Spark standalone and two Flink taskmanagers) or 0 (the default)")
    clustered = cluster in ("1", "true", "yes")
    who = _env(STACK).lower()
    if who not in ("embedded", "external"):
        raise ConfigError(f"STACK={who!r}: use embedded (the default: this workbook starts the services as local "
                          "processes) or external (they run elsewhere, docker-compose or a cluster: only checked)")
    master = _env(SPARK_MASTER) or (CLUSTER_SPARK_MASTER if clustered else "local[2]")
    if not (master.startswith("local") or master.startswith("spark://")):
        raise ConfigError(f"SPARK_MASTER={master!r}: use local[N] or spark://host:port (a standalone master)")
    shuffle = _positive(SPARK_SHUFFLE_PARTITIONS)
    jit = _env(SPARK_JIT).lower()
    if jit not in ("quick", "full"):
        raise ConfigError(f"SPARK_JIT={jit!r}: use quick (the default: the first JIT tier only, for short jobs) "
                          "or full (both tiers, for a long run)")
    version = _env(EVENT_SCHEMA_VERSION)
    if version not in ("1", "2"):
        raise ConfigError(f"EVENT_SCHEMA_VERSION={version!r}: use 1 (the default) or 2 (events name their client app)")
    webhook = _env(ALERT_WEBHOOK_URL)
    if webhook:
        check_webhook(webhook)
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
        alert_webhook_url=webhook,
        alert_webhook_timeout_s=_seconds(ALERT_WEBHOOK_TIMEOUT_S, MAX_ALERT_WEBHOOK_TIMEOUT_S),
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
        external=who == "external",
        spark_master=master,
        spark_master_webui_url=_env(SPARK_MASTER_WEBUI_URL).rstrip("/"),
        spark_driver_host=_env(SPARK_DRIVER_HOST),
        spark_executor_python=_env(SPARK_EXECUTOR_PYTHON),
        spark_jit=jit,
        airflow_venv=Path(_env(AIRFLOW_VENV)).resolve(),
        airflow_url=_env(AIRFLOW_URL).rstrip("/"),
        workbook_python=_env(WORKBOOK_PYTHON),
        retry_delay_s=_seconds(WORKBOOK_RETRY_DELAY_S, 24 * 3600),
        wait_timeout_s=_seconds(WORKBOOK_WAIT_TIMEOUT_S, 7 * 24 * 3600),
        wait_poke_s=_seconds(WORKBOOK_WAIT_POKE_S, 3600),
        maintain_keep_snapshots=_positive(MAINTAIN_KEEP_SNAPSHOTS),
        maintain_snapshot_age_s=_seconds(MAINTAIN_SNAPSHOT_AGE_S, 365 * 24 * 3600),
        maintain_orphan_age_s=_orphan_age(),
        crash_at=_env(WORKBOOK_CRASH_AT),
        rendezvous=_rendezvous(),
    )


#: What each environment variable is for: the third column of docs/configuration.md (reference_markdown).
DESCRIPTIONS = {
    "KAFKA_BOOTSTRAP_SERVERS": "Kafka's brokers, `host:port[,host:port]` (written into Flink SQL, so checked when "
                               "read)",
    "EVENTS_TOPIC": "the events topic; a legal Kafka topic name (checked when read)",
    "EVENTS_PARTITIONS": "the events topic's partitions",
    "ICEBERG_REST_URI": "the Iceberg REST catalog",
    "ICEBERG_WAREHOUSE": "the warehouse; empty: the file URI of `<STACK_HOME>/warehouse`, or "
                         "`s3://<S3_BUCKET>/` in S3 mode",
    "WAREHOUSE": "where the warehouse lives: `s3` (the S3 server at `S3_ENDPOINT`, which `stack up` then "
                 "starts) or `file` (the local file system, no S3 server)",
    "S3_ENDPOINT": "the S3 server (`WAREHOUSE=s3`)",
    "S3_BUCKET": "the warehouse's bucket; S3's bucket-name rule (checked when read)",
    "S3_ACCESS_KEY_ID": "the S3 key id: the embedded server's own, never a real key",
    "S3_SECRET_ACCESS_KEY": "the S3 secret key: the embedded server's own, never a real key",
    "S3_REGION": "the S3 region",
    "ROMAN_SERVICE_URL": "the Roman Numeral Service",
    "FLINK_REST_URL": "Flink's REST API (the session cluster's jobmanager)",
    "FLINK_RPC_PORT": "the jobmanager's RPC (Pekko) port",
    "FLINK_BLOB_PORT": "the jobmanager's blob server (jars, Python files)",
    "STACK_HOME": "the embedded stack's data and logs",
    "JARS_DIR": "where `make jars` puts what Maven fetched",
    "FLINK_VENV": "PyFlink's virtualenv: the cluster's scripts and jars, the submitting client",
    "AIRFLOW_VENV": "Airflow 3.3.2's virtualenv (`make airflow`), for `dags/`",
    "AIRFLOW_URL": "Airflow's api-server (UI, REST API `/api/v2`, the tasks' execution API) when "
                   "`python -m lib airflow up` runs it",
    "ALERT_WEBHOOK_URL": "empty: alerts go to stderr and `runs/alerts.log` only; when set, an http(s) URL with a "
                         "host (checked when read) that every alert is POSTed to",
    "ALERT_WEBHOOK_TIMEOUT_S": "seconds one alert may spend on the webhook in all (connect, send, answer), at most "
                               f"{MAX_ALERT_WEBHOOK_TIMEOUT_S:g}; a delivery that fails is logged as "
                               '`"delivery": "undelivered"` in `runs/alerts.log`',
    "RUNS_DIR": "executed notebooks, run history, alerts log, scheduler lock",
    "SPARK_DRIVER_MEMORY": "the Spark driver's memory (`spark.driver.memory`)",
    "STACK": "`embedded`: `stack up` starts the services as local processes and `stack down` stops them; "
             "`external`: they run elsewhere (docker-compose, a cluster), nothing is started or stopped, each "
             "service is only asked whether it answers",
    "CLUSTER": "`1` adds a Spark standalone master and worker and a second Flink taskmanager, and the layer jobs "
               "run on the Spark cluster instead of in-process",
    "SPARK_MASTER": f"where Spark jobs run: empty means `local[2]`, or `{CLUSTER_SPARK_MASTER}` with `CLUSTER=1`; "
                    "any `spark://` URL points the jobs at a real cluster",
    "SPARK_MASTER_WEBUI_URL": "the Spark master's web UI",
    "SPARK_DRIVER_HOST": "the address executors reach the driver at (the notebook's process): its host name in a "
                         "container",
    "SPARK_EXECUTOR_PYTHON": "the interpreter Spark's executors run Python UDFs on; empty: the driver's own (the "
                             "same machine); in containers, the worker image's (it must have the same packages)",
    "SPARK_SHUFFLE_PARTITIONS": "`spark.sql.shuffle.partitions`",
    "SPARK_JIT": "the Spark driver's JIT: `quick` (the default: C1 only, which starts a short job sooner) or "
                 "`full` (C1 then C2, for a long-running session)",
    "JAVA_HOME": "empty: the `java` on PATH",
    "SERVICE_ACK_TIMEOUT_S": "seconds the service waits for Kafka to acknowledge an event before it answers 503",
    "EVENT_SCHEMA_VERSION": "the event schema version the service writes: `1`, or `2` (with `client`, from the "
                            "`X-Client` header)",
    "WORKBOOK_PYTHON": "the interpreter Airflow's tasks run `python -m lib run` with (the project's `.venv`)",
    "WORKBOOK_RETRY_DELAY_S": "seconds between an Airflow task's retries",
    "WORKBOOK_WAIT_TIMEOUT_S": "seconds a DAG waits for its upstream job's runs before it fails",
    "WORKBOOK_WAIT_POKE_S": "seconds between two looks at the upstream job's runs",
    "MAINTAIN_KEEP_SNAPSHOTS": "`maintain` keeps at least this many newest snapshots of each table",
    "MAINTAIN_SNAPSHOT_AGE_S": "`maintain` expires only snapshots older than this (time travel reaches this far)",
    "MAINTAIN_ORPHAN_AGE_S": "`maintain` deletes only unreferenced files older than this: longer than any "
                             "write takes, and than the oldest restore point of the stream",
    "WORKBOOK_CRASH_AT": "a crash point (`bronze.before_offsets`...) where a run raises, as a killed driver "
                         "would: the drills' and tests' (`lib/faults.py`)",
    "WORKBOOK_RENDEZVOUS": "`<point>@<directory>#<parties>`: runs wait at that point until that many arrived, "
                           "the race of two runs made certain (`lib/faults.py`)",
}


def reference_markdown() -> str:
    """The environment variables as a markdown table (variable, default, what it is for), built from this
    module's `(NAME, default)` pairs in definition order; docs/configuration.md holds its output and a
    unit test checks the two agree. A variable without a description here, or a description without a
    variable, is an error: the table never falls behind the settings."""
    pairs = [value for name, value in globals().items()
             if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
             and value[0] == name]
    names = [name for name, _ in pairs]
    if missing := [name for name in names if name not in DESCRIPTIONS]:
        raise LookupError(f"{', '.join(missing)}: no description in lib.config.DESCRIPTIONS; add one")
    if stale := [name for name in DESCRIPTIONS if name not in names]:
        raise LookupError(f"{', '.join(stale)}: described in lib.config.DESCRIPTIONS but not a setting")

    def shown(default: str) -> str:
        if not default:
            return "(empty)"
        root = str(ROOT)
        return f"`<repo>{default[len(root):]}`" if default.startswith(root) else f"`{default}`"

    rows = [f"| `{name}` | {shown(default)} | {DESCRIPTIONS[name]} |" for name, default in pairs]
    return "\n".join(["| variable | default | what it is for |", "|---|---|---|", *rows])
