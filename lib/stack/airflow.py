"""Airflow 3 beside the embedded stack: its api-server, dag-processor and scheduler, supervised like every
other service (`python -m lib airflow up`; `python -m lib stack down` stops them with the rest).

Airflow 3.3.2 lives in a virtualenv of its own (.venv-airflow, `make airflow`) and reads the DAGs in
dags/. Its metadata database is SQLite under STACK_HOME/airflow; the executor has a slot per DAG. The
scheduler runs the tasks with LocalExecutor in its own process tree; each task reports to the
api-server's execution API, which checks the JWT the scheduler signed, so every process gets the same
secrets (made once, kept in STACK_HOME/airflow/secrets.json, mode 600). One user, `admin`, whose
password is made once too and printed by `airflow up`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

from lib.config import ROOT, Settings
from lib.errors import HttpError, StackError
from lib.plumbing.http import get_json
from lib.stack.base import Service

DAGS = ROOT / "dags"
#: The processes, in start order: the api-server first (tasks report to it), the scheduler last.
ROLES = ("api-server", "dag-processor", "scheduler")
#: The executor's slots: one per DAG of dags/ (bronze, silver, gold, maintain, migrate-silver).
PARALLELISM = 5
#: What /api/v2/monitor/health reports for each process ("metadatabase" for the api-server itself).
_HEALTH_KEY = {"api-server": "metadatabase", "dag-processor": "dag_processor", "scheduler": "scheduler"}


def airflow_home(cfg: Settings) -> Path:
    return cfg.stack_home / "airflow"


def credentials(cfg: Settings) -> dict[str, str]:
    """The secrets every Airflow process shares and the admin's password, made on first use and kept
    (mode 600) so a restart keeps its tokens and its user."""
    path = airflow_home(cfg) / "secrets.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32),
                "admin_password": secrets.token_urlsafe(12)}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(made, handle)
    return json.loads(path.read_text())


def airflow_env(cfg: Settings) -> dict[str, str]:
    """The variables Airflow reads: home, DAGs, SQLite, a small parallelism, where the api-server listens
    and where tasks find it, the shared secrets, the one user."""
    home = airflow_home(cfg)
    api = cfg.airflow_address
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # At least one slot per DAG (each runs one task at a time): a sensor waiting in poke mode for its
        # upstream job can never hold the slot that job needs (dags/medallion.py).
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": api.host,
        "AIRFLOW__API__PORT": str(api.port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.airflow_url}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",  # a new DAG file is seen in seconds, not 5 minutes
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # DAG files import lib/ from the repository; tasks run the project's own .venv.
        "PYTHONPATH": str(ROOT),
        "WORKBOOK_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
    }


def server_env(cfg: Settings) -> dict[str, str]:
    """airflow_env and the shared secrets: what the running processes need beyond the CLI."""
    made = credentials(cfg)
    return {**airflow_env(cfg), "AIRFLOW__API_AUTH__JWT_SECRET": made["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": made["secret_key"]}


def binary(cfg: Settings) -> Path:
    found = cfg.airflow_venv / "bin" / "airflow"
    if not found.exists():
        raise StackError(f"Airflow is not installed at {cfg.airflow_venv}: run `make airflow` (Airflow 3.3.2 "
                         "from requirements-airflow.txt, about 30 s).")
    return found


def migrate(cfg: Settings, env: dict[str, str]) -> None:
    """`airflow db migrate` once, on an empty home: a StackError with Airflow's own words if it fails."""
    home = airflow_home(cfg)
    home.mkdir(parents=True, exist_ok=True)
    if (home / "airflow.db").exists():
        return
    migrated = subprocess.run([str(binary(cfg)), "db", "migrate"], env={**os.environ, **env}, capture_output=True,
                              text=True, cwd=ROOT, check=False)
    if migrated.returncode != 0:
        tail = "\n".join((migrated.stderr or migrated.stdout).strip().splitlines()[-15:])
        raise StackError(f"`airflow db migrate` failed in {home} (exit {migrated.returncode}); remove that folder "
                         f"to start from an empty metadata database, or fix what Airflow says:\n{tail}")


def health(cfg: Settings) -> dict[str, str]:
    """{process: "healthy" | "unhealthy"} as the api-server reports it (no token needed); {} when it does not answer."""
    try:
        found = get_json(f"{cfg.airflow_url}/api/v2/monitor/health")
    except HttpError:
        return {}
    return {role: str((found.get(key) or {}).get("status")) for role, key in _HEALTH_KEY.items()}


class AirflowProcess(Service):
    """One of Airflow's processes, run from .venv-airflow in the foreground."""

    def __init__(self, cfg: Settings, role: str) -> None:
        api = cfg.airflow_address
        self.role = role
        super().__init__(f"airflow-{role}", api.host, api.port, "AIRFLOW_URL")

    def ports(self) -> tuple[int, ...]:
        return super().ports() if self.role == "api-server" else ()

    def address(self) -> str:
        return super().address() if self.role == "api-server" else f"{self.host} (reports to the api-server)"

    def prepare(self, cfg: Settings) -> None:
        home = airflow_home(cfg)
        migrate(cfg, airflow_env(cfg))
        passwords = home / "passwords.json"  # Airflow's own file of user -> password, kept private
        if not passwords.exists():
            descriptor = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump({"admin": credentials(cfg)["admin_password"]}, handle)

    def command(self, cfg: Settings) -> list[str]:
        # The scheduler and the api-server read task logs from the files on this machine: no log server.
        extra = ["--skip-serve-logs"] if self.role == "scheduler" else []
        return [str(binary(cfg)), self.role, *extra]

    def environment(self, cfg: Settings) -> dict[str, str]:
        return server_env(cfg)

    def healthy(self, cfg: Settings) -> bool:
        return health(cfg).get(self.role) == "healthy"

    def hint(self) -> str:
        return ("See the full log; `python -m lib airflow down` then `python -m lib airflow up` starts over "
                "(remove STACK_HOME/airflow for an empty metadata database).")


def airflow_services(cfg: Settings) -> list[Service]:
    return [AirflowProcess(cfg, role) for role in ROLES]
