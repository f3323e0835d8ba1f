"""Airflow, the seed's orchestrator, run locally: its environment and its command line.

Airflow 3.3.2 lives in a virtualenv of its own (.venv-airflow, `make airflow`, pinned by
requirements-airflow.txt) and reads the DAGs in dags/, which the job registry generates. Its
metadata database is SQLite under STACK_HOME/airflow, migrated on first use; parallelism is kept
small for a 2-core laptop. `python -m lib airflow <args>` runs the `airflow` command with all of it
set, for example `python -m lib airflow dags test bronze 2026-11-29T10:15:00+00:00`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lib.config import ROOT, Settings
from lib.errors import StackError

DAGS = ROOT / "dags"


def airflow_home(cfg: Settings) -> Path:
    return cfg.stack_home / "airflow"


def airflow_env(cfg: Settings) -> dict[str, str]:
    """The variables Airflow reads: home, DAGs folder, SQLite database, a small parallelism."""
    home = airflow_home(cfg)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",  # `standalone`'s UI, like every service of the stack
        # DAG files import lib/ from the repository; tasks run the project's own .venv.
        "PYTHONPATH": str(ROOT),
        "WORKBOOK_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
    }


def airflow(cfg: Settings, args: list[str], env: dict[str, str] | None = None,
            capture: bool = False) -> subprocess.CompletedProcess:
    """Run `airflow <args>` in .venv-airflow with the workbook's settings (the database migrated first)."""
    binary = cfg.airflow_venv / "bin" / "airflow"
    if not binary.exists():
        raise StackError(f"Airflow is not installed at {cfg.airflow_venv}: run `make airflow` (Airflow 3.3.2 "
                         "from requirements-airflow.txt, about 30 s).")
    full = {**os.environ, **airflow_env(cfg), **(env or {})}
    home = airflow_home(cfg)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "airflow.db").exists():
        migrated = subprocess.run([str(binary), "db", "migrate"], env=full, capture_output=True, text=True, cwd=ROOT)
        if migrated.returncode != 0:
            tail = "\n".join((migrated.stderr or migrated.stdout).strip().splitlines()[-15:])
            raise StackError(f"`airflow db migrate` failed in {home} (exit {migrated.returncode}); remove that folder "
                             f"to start from an empty metadata database, or fix what Airflow says:\n{tail}")
    return subprocess.run([str(binary), *args], env=full, cwd=ROOT, text=True, capture_output=capture)
