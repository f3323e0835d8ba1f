"""Every version is pinned, and the pins that must agree across Python and the JVM do."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET

from lib.config import ROOT

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert "==" in line, f"{name}: {line!r} is not pinned with =="
            pkg, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", pkg.lower())] = version
    return pins


def _pom_properties() -> dict[str, str]:
    root = ET.parse(ROOT / "jars" / "pom.xml").getroot()
    props = root.find("m:properties", NS)
    return {child.tag.split("}")[1]: (child.text or "") for child in props}


def test_pyproject_pins_match_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock("requirements.txt")
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    for spec in declared:
        name, version = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(.+)", spec).groups()
        assert lock[re.sub(r"[-_.]+", "-", name.lower())] == version, spec


def test_spark_jars_match_pyspark() -> None:
    assert _pom_properties()["spark.version"] == _lock("requirements.txt")["pyspark"]


def test_flink_jars_match_apache_flink() -> None:
    flink = _lock("requirements-flink.txt")["apache-flink"]
    assert flink.startswith(_pom_properties()["flink.minor"] + ".")


def test_every_maven_dependency_has_a_version() -> None:
    for pom in sorted((ROOT / "jars").glob("*/pom.xml")):
        root = ET.parse(pom).getroot()
        for dep in root.iterfind("m:dependencies/m:dependency", NS):
            version = dep.find("m:version", NS)
            assert version is not None and version.text, f"{pom}: {dep.find('m:artifactId', NS).text} unpinned"


def test_the_airflow_lock_pins_airflow_and_every_dependency() -> None:
    lock = _lock("requirements-airflow.txt")  # asserts every line is pinned with ==
    assert lock["apache-airflow"] == lock["apache-airflow-core"] == "3.3.2"
    assert "apache-airflow-providers-standard" in lock  # BashOperator and BashSensor
    assert "papermill" not in lock  # the tasks run papermill in .venv, through `python -m lib run`
