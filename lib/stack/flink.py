"""The Flink session cluster: a jobmanager and one taskmanager (two in cluster mode), their config,
lib folder and environment.

The cluster runs from the apache-flink package installed in .venv-flink: its own jobmanager.sh and
taskmanager.sh, started in the foreground so our supervisor owns the java pids. Nothing is
written inside site-packages: config, lib links, logs, pids, checkpoints and temp files all live
under STACK_HOME/flink.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from lib.config import S3_CHECKSUM_FLAGS, Settings
from lib.errors import HttpError, StackError
from lib.plumbing.http import get_json
from lib.stack.base import Service

# Java 17 needs these opens for Flink's serializers; copied from the package's default config.
_JAVA_OPTS = " ".join(
    [f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api", "jdk.compiler/com.sun.tools.javac.file",
        "jdk.compiler/com.sun.tools.javac.parser", "jdk.compiler/com.sun.tools.javac.tree",
        "jdk.compiler/com.sun.tools.javac.util", "java.security.jgss/sun.security.krb5",
    )]
    + [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect", "java.text",
        "java.time", "java.util", "java.util.concurrent", "java.util.concurrent.atomic",
        "java.util.concurrent.locks",
    )]
)

#: Restarts a failing job gets before it is FAILED (about ten minutes with the delays below).
RESTART_ATTEMPTS = 24
TASK_SLOTS = 4  # one taskmanager; in cluster mode each of the two has CLUSTER_TASK_SLOTS
CLUSTER_TASK_SLOTS = 2


def flink_home(cfg: Settings) -> Path:
    """The pyflink package folder in the Flink virtualenv (it holds bin/, lib/, opt/, conf/)."""
    homes = sorted(cfg.flink_venv.glob("lib/python3*/site-packages/pyflink"))
    if not homes or not (homes[0] / "bin" / "jobmanager.sh").exists():
        raise StackError(
            f"PyFlink is not installed in {cfg.flink_venv}. The Flink cluster runs from the apache-flink "
            "package's own scripts: run `make setup` (it builds .venv-flink from requirements-flink.txt)."
        )
    return homes[0]


def flink_script(cfg: Settings, name: str) -> Path:
    return flink_home(cfg) / "bin" / name


def flink_dir(cfg: Settings) -> Path:
    return cfg.stack_home / "flink"


def flink_environment(cfg: Settings) -> dict[str, str]:
    """Variables for the cluster scripts and for every PyFlink client (FLINK_HOME makes pyflink honour the rest)."""
    home = flink_dir(cfg)
    env = {
        "FLINK_HOME": str(flink_home(cfg)),
        "FLINK_CONF_DIR": str(home / "conf"),
        "FLINK_LIB_DIR": str(home / "lib"),
        "FLINK_LOG_DIR": str(home / "log"),
        "FLINK_PID_DIR": str(home / "pid"),
        "FLINK_IDENT_STRING": "workbook",
    }
    if cfg.java_home:
        env["JAVA_HOME"] = cfg.java_home
    return env


def client_environment(cfg: Settings) -> dict[str, str]:
    """flink_environment for a PyFlink client, with conf/ and lib/ written first where no cluster of this stack
    wrote them (STACK=external: a container's empty STACK_HOME). PyFlink builds its classpath from FLINK_LIB_DIR:
    without the connector jars there, a job's Kafka and Iceberg tables have no factory."""
    home = flink_dir(cfg)
    if not (home / "conf" / "config.yaml").exists() or not any((home / "lib").glob("*.jar")):
        write_flink_conf(cfg, client_only=cfg.external)
    return flink_environment(cfg)


def client_only_config(cfg: Settings) -> dict:
    """config.yaml for a client of a cluster that runs elsewhere: where its REST API is. Nothing the client
    sets reaches the job as a path on this machine (checkpoints, savepoints): the cluster's own
    configuration decides those."""
    addr = cfg.flink_address
    return {"rest": {"address": addr.host, "port": addr.port},
            "env": {"java": {"opts": {"all": _JAVA_OPTS}}}}


def _yaml(value: object, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        return "".join(
            f"{pad}{k}:\n{_yaml(v, indent + 1)}" if isinstance(v, dict) else f"{pad}{k}: {_scalar(v)}\n"
            for k, v in value.items()
        )
    return f"{pad}{_scalar(value)}\n"


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return f'"{text}"' if text.isdigit() else text


def flink_config(cfg: Settings) -> dict:
    """config.yaml for Flink 2.1 (nested YAML): everything on 127.0.0.1, sized for a 2-core laptop."""
    home = flink_dir(cfg)
    addr = cfg.flink_address
    return {
        "env": {
            "java": {"opts": {"all": " ".join([_JAVA_OPTS, f"-Djava.io.tmpdir={home / 'tmp'}", *S3_CHECKSUM_FLAGS])}},
            "log": {"dir": str(home / "log")},
            "pid": {"dir": str(home / "pid")},
            "stdout-err": {"redirect-to-file": True},
        },
        "jobmanager": {
            "bind-host": addr.host,
            "rpc": {"address": addr.host, "port": cfg.flink_rpc_port},
            "memory": {"process": {"size": "768m"}, "jvm-overhead": {"min": "128m"}},
            "execution": {"failover-strategy": "region"},
        },
        "taskmanager": {
            "bind-host": addr.host,
            "host": addr.host,
            "numberOfTaskSlots": CLUSTER_TASK_SLOTS if cfg.cluster else TASK_SLOTS,
            # A job's slots spread evenly over the taskmanagers instead of filling the first one.
            "load-balance": {"mode": "slots" if cfg.cluster else "none"},
            "memory": {
                "process": {"size": "1024m" if cfg.cluster else "1280m"},
                "managed": {"size": "256m"},
                "jvm-metaspace": {"size": "192m"},
                "jvm-overhead": {"min": "128m"},
                "network": {"min": "32m", "max": "64m"},
            },
        },
        "parallelism": {"default": 1},
        # A killed taskmanager is noticed within seconds, not the default 50 s.
        "heartbeat": {"interval": 2000, "timeout": 15000},
        "rest": {"address": addr.host, "bind-address": addr.host, "port": addr.port},
        "web": {"tmpdir": str(home / "tmp" / "web")},
        "blob": {"server": {"port": cfg.flink_blob_port}, "storage": {"directory": str(home / "tmp" / "blob")}},
        "io": {"tmp": {"dirs": str(home / "tmp" / "io")}},
        # A job whose source is unreachable (broker down) retries with a growing delay, for about ten
        # minutes (2+4+8+16 s, then every 30 s), then fails for good: a job that keeps failing is FAILED
        # in `stream status`, which alerts, instead of restarting forever. Ten minutes of stable
        # running give it its attempts back.
        "restart-strategy": {
            "type": "exponential-delay",
            "exponential-delay": {"initial-backoff": "2s", "max-backoff": "30s",
                                  "attempts-before-reset-backoff": RESTART_ATTEMPTS,
                                  "reset-backoff-threshold": "10min"},
        },
        "state": {"backend": {"type": "hashmap"}},
        "execution": {
            "checkpointing": {
                "dir": (home / "checkpoints").as_uri(),
                "savepoint-dir": (home / "savepoints").as_uri(),
                "interval": "10s",
            }
        },
    }


def write_flink_conf(cfg: Settings, client_only: bool = False) -> Path:
    """Write conf/ and lib/ under STACK_HOME/flink (the cluster's, or a client's of a cluster elsewhere);
    returns the conf folder."""
    pyflink = flink_home(cfg)
    home = flink_dir(cfg)
    conf = home / "conf"
    for sub in ("conf", "lib", "log", "pid", "tmp/web", "tmp/blob", "tmp/io", "checkpoints", "savepoints"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for item in (pyflink / "conf").iterdir():
        if item.is_file() and item.name != "config.yaml" and item.name not in ("masters", "workers"):
            shutil.copy2(item, conf / item.name)
    (conf / "config.yaml").write_text(_yaml(client_only_config(cfg) if client_only else flink_config(cfg)))
    (conf / "masters").write_text(f"{cfg.flink_address}\n")
    (conf / "workers").write_text(f"{cfg.flink_address.host}\n")
    # Foreground scripts write pid files they never remove; stale ones would shift log names.
    for pid_file in (home / "pid").glob("*.pid"):
        pid_file.unlink()
    _link_jars(cfg, pyflink, home / "lib")
    return conf


def _link_jars(cfg: Settings, pyflink: Path, lib: Path) -> None:
    extra = sorted((cfg.jars_dir / "flink").glob("*.jar"))
    if not extra:
        raise StackError(f"The Flink connector jars are missing from {cfg.jars_dir / 'flink'}: run `make jars`.")
    wanted = [*sorted((pyflink / "lib").glob("*.jar")), *sorted((pyflink / "opt").glob("flink-python-*.jar")), *extra]
    for old in lib.iterdir():
        old.unlink()
    for jar in wanted:
        (lib / jar.name).symlink_to(jar)


class FlinkProcess(Service):
    """A jobmanager or taskmanager of the Flink session cluster, from pyflink's own scripts.

    Taskmanagers are numbered from 1: the first is `flink-taskmanager`, further ones (cluster mode)
    `flink-taskmanager-2` and so on, so whatever names the first works in every mode.
    """

    def __init__(self, cfg: Settings, role: str, number: int = 1) -> None:
        addr = cfg.flink_address
        self.role = role
        extra = (cfg.flink_rpc_port, cfg.flink_blob_port) if role == "jobmanager" else ()
        moved_by = "FLINK_REST_URL (and FLINK_RPC_PORT, FLINK_BLOB_PORT)" if extra else "FLINK_REST_URL"
        name = f"flink-{role}" if number == 1 else f"flink-{role}-{number}"
        super().__init__(name, addr.host, addr.port, moved_by, extra)
        self.number = number
        self.resource_id: str | None = None  # a taskmanager's, once `command` has named it

    def ports(self) -> tuple[int, ...]:
        return self.extra_ports if self.role == "taskmanager" else super().ports()

    def command(self, cfg: Settings) -> list[str]:
        command = ["bash", str(flink_script(cfg, f"{self.role}.sh")), "start-foreground"]
        if self.role == "taskmanager":
            # A name of its own, so health means "this process registered", not "some taskmanager is
            # still listed" (a killed one stays listed until its heartbeat times out).
            self.resource_id = f"workbook-tm-{uuid.uuid4().hex[:8]}"
            command += ["-D", f"taskmanager.resource-id={self.resource_id}"]
        return command

    def prepare(self, cfg: Settings) -> None:
        write_flink_conf(cfg)

    def environment(self, cfg: Settings) -> dict[str, str]:
        env = flink_environment(cfg)
        if self.number > 1:
            # Log, .out and pid files of its own: with the same names, a restarted taskmanager would
            # rotate away the stdout file another one still writes (and the REST API serves).
            env["FLINK_IDENT_STRING"] = f"workbook-tm{self.number}"
        return env

    def healthy(self, cfg: Settings) -> bool:
        """The jobmanager answers; a taskmanager this object started has registered (any registered
        one, for `stack status` or `up` of a running stack)."""
        try:
            if self.role == "taskmanager" and self.resource_id is not None:
                managers = get_json(f"{cfg.flink_rest_url}/taskmanagers").get("taskmanagers", [])
                return self.resource_id in [m["id"] for m in managers]
            overview = get_json(f"{cfg.flink_rest_url}/overview")
        except HttpError:
            return False
        return self.role == "jobmanager" or overview.get("taskmanagers", 0) >= 1

    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.role == "jobmanager" else f"{self.host} (rpc)"
