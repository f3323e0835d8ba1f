"""Every version is pinned with its hashes, and the pins that must agree across Python and the JVM do."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET

import pytest

from lib.config import ROOT

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


LOCKS = ("requirements.txt", "requirements-flink.txt", "requirements-airflow.txt", "requirements-bootstrap.txt",
         "requirements-tools.txt")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _entries(name: str) -> dict[str, list[str]]:
    """Each requirement line of a lock (`pkg==version`, a marker after `;` dropped) and its hash options."""
    entries: dict[str, list[str]] = {}
    current = ""
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.strip().removesuffix("\\").strip()
        if not line or line.startswith("#"):
            continue
        if raw[0].isspace():
            assert current and HASH.fullmatch(line), f"{name}: {raw!r} is not a --hash=sha256 line of {current}"
            entries[current].append(line)
        else:
            current = line.split(";")[0].strip()
            entries[current] = []
    return entries


def _lock(name: str) -> dict[str, str]:
    pins = {}
    for requirement in _entries(name):
        assert "==" in requirement, f"{name}: {requirement!r} is not pinned with =="
        pkg, version = requirement.split("==")
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
    assert _pom_properties()["flink.version"] == flink  # what the event rule's Flink functions compile against


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


@pytest.mark.parametrize("name", LOCKS)
def test_every_pin_carries_its_hashes(name: str) -> None:
    """pip --require-hashes refuses a file whose sha256 is not listed, and a package the lock does not list."""
    entries = _entries(name)
    assert entries, name
    for requirement, hashes in entries.items():
        assert hashes, f"{name}: {requirement} has no --hash (make lock adds them)"
        assert len(set(hashes)) == len(hashes), f"{name}: {requirement} lists a hash twice"


def test_pip_and_setuptools_are_pinned_past_what_python_ships() -> None:
    boot = _lock("requirements-bootstrap.txt")
    assert set(boot) == {"pip", "setuptools"}
    assert int(boot["pip"].split(".")[0]) >= 25 and int(boot["setuptools"].split(".")[0]) >= 70
    for name in ("requirements.txt", "requirements-flink.txt", "requirements-airflow.txt"):
        assert not {"pip", "setuptools"} & set(_lock(name)), f"{name} pins pip or setuptools apart from the bootstrap"


def test_every_install_requires_hashes() -> None:
    """The Makefile and each image install only hashed files, the pinned pip and setuptools first."""
    makefile = (ROOT / "Makefile").read_text()
    flags = re.search(r"^PIP_INSTALL := (.*)$", makefile, re.M).group(1)
    assert "--require-hashes" in flags
    for venv in ("$(VPY)", "$(FLINK_VENV)/bin/python", "$(AIRFLOW_VENV)/bin/python", "$(LOCK_VENV)/bin/python"):
        installs = re.findall(rf"^\t{re.escape(venv)} (\S+) -r (\S+)$", makefile, re.M)
        assert installs and installs[0] == ("$(PIP_INSTALL)", "$(BOOTSTRAP)"), venv
        assert all(how == "$(PIP_INSTALL)" for how, _ in installs), venv
    assert not re.search(r"pip install(?!.*--require-hashes)", makefile.replace("$(PIP_INSTALL)", flags))
    installing = []
    for dockerfile in sorted((ROOT / "docker").glob("*/Dockerfile")):
        lines = [line for line in dockerfile.read_text().splitlines() if "pip install" in line]
        if lines:  # the Flink image installs no Python (the job calls no Python function)
            installing.append(dockerfile.parent.name)
            assert all("--require-hashes" in line for line in lines), dockerfile
            assert "requirements-bootstrap.txt" in lines[0], dockerfile
    assert {"airflow", "workbook"} <= set(installing), installing


def test_maven_fails_on_a_checksum_mismatch() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^MVN := mvn .*(-C|--strict-checksums)\b", makefile, re.M)
    settings = ET.parse(ROOT / "jars" / "settings.xml").getroot()
    ns = {"s": "http://maven.apache.org/SETTINGS/1.2.0"}
    policies = [p.text for p in settings.iterfind(".//s:releases/s:checksumPolicy", ns)]
    assert policies and set(policies) == {"fail"}
