"""Cluster mode's Spark: a standalone master and one worker, started from the pyspark package.

pyspark ships `bin/spark-class` (not the sbin start scripts), which is enough: each daemon runs in
the foreground under the supervisor. SPARK_HOME points into site-packages only to find the
scripts and jars; config, the worker's application folders, scratch space and logs all live
under STACK_HOME/spark. The layer jobs reach the master at SPARK_MASTER (spark://...), and the
master's web UI at SPARK_MASTER_WEBUI_URL lists their applications (`/json/`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyspark

from lib.config import Settings
from lib.errors import HttpError
from lib.plumbing.http import get_json
from lib.stack.base import Service

#: The worker's RPC and web UI ports (fixed, so a port error names them and health finds the worker).
WORKER_PORT = 7078
WORKER_WEBUI_PORT = 8082
#: What the worker offers executors: both cores of a laptop and room for one 1 GiB executor.
WORKER_CORES = 2
WORKER_MEMORY = "1536m"
#: Heap of the master and worker daemons themselves (they hold little state).
DAEMON_MEMORY = "256m"


def spark_home() -> Path:
    """The pyspark package folder: it holds bin/spark-class and jars/."""
    return Path(pyspark.__file__).resolve().parent


def spark_dir(cfg: Settings) -> Path:
    return cfg.stack_home / "spark"


def master_state(cfg: Settings) -> dict:
    """The master's /json/ document: workers, active and completed applications."""
    return get_json(f"{cfg.spark_master_webui_url}/json/")


class _SparkDaemon(Service):
    main_class = ""

    def prepare(self, cfg: Settings) -> None:
        home = spark_dir(cfg)
        for sub in ("conf", "work", "local", "logs"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        # The master's REST submission server (port 6066) is not needed: jobs connect as clients.
        (home / "conf" / "spark-defaults.conf").write_text(
            "spark.master.rest.enabled false\n"
            "spark.worker.cleanup.enabled true\n"
        )

    def environment(self, cfg: Settings) -> dict[str, str]:
        home = spark_dir(cfg)
        env = {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(home / "conf"),
            "SPARK_WORKER_DIR": str(home / "work"),
            "SPARK_LOCAL_DIRS": str(home / "local"),
            "SPARK_LOG_DIR": str(home / "logs"),
            "SPARK_LOCAL_IP": self.host,
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
            # Executors start Python workers with this interpreter (it has lib/ on its path).
            "PYSPARK_PYTHON": sys.executable,
        }
        if cfg.java_home:
            env["JAVA_HOME"] = cfg.java_home
        return env

    def command(self, cfg: Settings) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), self.main_class, *self.arguments(cfg)]

    def arguments(self, cfg: Settings) -> list[str]:
        raise NotImplementedError


class SparkMaster(_SparkDaemon):
    """The standalone master: schedules the layer jobs' executors on the worker."""

    main_class = "org.apache.spark.deploy.master.Master"

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.spark_master_address
        super().__init__("spark-master", addr.host, addr.port, "SPARK_MASTER (and SPARK_MASTER_WEBUI_URL)",
                         (cfg.spark_webui_address.port,))

    def arguments(self, cfg: Settings) -> list[str]:
        return ["--host", self.host, "--port", str(self.port), "--webui-port", str(self.extra_ports[0])]

    def healthy(self, cfg: Settings) -> bool:
        try:
            return master_state(cfg).get("status") == "ALIVE"
        except HttpError:
            return False


class SparkWorker(_SparkDaemon):
    """The standalone worker: runs the executors the master gives it."""

    main_class = "org.apache.spark.deploy.worker.Worker"

    def __init__(self, cfg: Settings) -> None:
        host = cfg.spark_master_address.host
        super().__init__("spark-worker", host, WORKER_PORT, "", (WORKER_WEBUI_PORT,))  # fixed ports

    def arguments(self, cfg: Settings) -> list[str]:
        return [cfg.spark_master, "--host", self.host, "--port", str(self.port),
                "--webui-port", str(WORKER_WEBUI_PORT), "--cores", str(WORKER_CORES),
                "--memory", WORKER_MEMORY, "--work-dir", str(spark_dir(cfg) / "work")]

    def healthy(self, cfg: Settings) -> bool:
        """Registered with the master and alive (not merely listening)."""
        try:
            workers = master_state(cfg).get("workers", [])
        except HttpError:
            return False
        return any(w.get("port") == self.port and w.get("state") == "ALIVE" for w in workers)
