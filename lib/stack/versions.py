"""What the workbook runs on, read from what is installed (not from what we hoped to install)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from lib.config import Settings


def _jar_version(folder: Path, prefix: str) -> str:
    for jar in sorted(folder.glob(f"{prefix}-*.jar")):
        match = re.match(rf"{re.escape(prefix)}-(\d[\w.\-]*?)\.jar$", jar.name)
        if match:
            return match.group(1)
    return "not installed"


def _flink_version(cfg: Settings) -> str:
    libs = sorted(cfg.flink_venv.glob("lib/python3*/site-packages/pyflink/lib"))
    return _jar_version(libs[0], "flink-dist") if libs else "not installed"


def versions(cfg: Settings) -> dict[str, str]:
    """{component: version} for Spark, Flink, Kafka, Iceberg, the Python clients and the service's server."""

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "Spark (pyspark)": dist("pyspark"),
        "Flink (apache-flink)": _flink_version(cfg),
        "Kafka broker": _jar_version(cfg.jars_dir / "kafka", "kafka_2.13"),
        "Iceberg (Spark runtime)": _jar_version(cfg.jars_dir / "spark", "iceberg-spark-runtime-4.1_2.13"),
        "PyIceberg": dist("pyiceberg"),
        "kafka-python": dist("kafka-python"),
        "FastAPI (the service)": dist("fastapi"),
        "uvicorn (serves it)": dist("uvicorn"),
    }
