"""Airflow, the seed's orchestrator, run locally: its environment and its command line.

Airflow 3.3.2 lives in a virtualenv of its own (.venv-airflow, `make airflow`, pinned by
requirements-airflow.txt) and reads the DAGs in dags/, which the job registry generates. Its
metadata database is SQLite under STACK_HOME/airflow, migrated on first use; the executor has a
slot per DAG (lib.stack.airflow). `python -m lib airflow <args>` runs the `airflow` command with all of it
set, for example `python -m lib airflow dags test bronze 2026-11-29T10:15:00+00:00`.
"""

from __future__ import annotations

import os
import subprocess

from lib.config import ROOT, Settings
from lib.stack.airflow import DAGS, airflow_env, airflow_home, binary, migrate

__all__ = ["DAGS", "airflow", "airflow_env", "airflow_home"]


def airflow(cfg: Settings, args: list[str], env: dict[str, str] | None = None,
            capture: bool = False) -> subprocess.CompletedProcess:
    """Run `airflow <args>` in .venv-airflow with the workbook's settings (the database migrated first)."""
    full = {**airflow_env(cfg), **(env or {})}
    migrate(cfg, full)
    return subprocess.run([str(binary(cfg)), *args], env={**os.environ, **full}, cwd=ROOT, text=True,
                          capture_output=capture)
