"""docker-compose.yml, checked statically (no Docker engine here): what the compose schema cannot see.

check-jsonschema validates the file against the compose specification (`make lint`); these tests
check what a schema cannot: every image pinned, every long-running service with a healthcheck,
every depends_on naming a service that exists, every port bound to 127.0.0.1, and the addresses
the project's containers read agreeing with the services and ports the file defines and with the
embedded stack's defaults that the notebooks read.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import yaml

from lib import config
from lib.config import ROOT
from lib.jobs.registry import JOBS

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
ONE_SHOT = {name for name, s in SERVICES.items() if s.get("restart") == "no"}


def _container_port(service: str) -> set[int]:
    """Ports a service listens on inside the network (published ones and the ones its command names)."""
    spec = SERVICES[service]
    ports = {int(p.rsplit(":", 1)[-1]) for p in spec.get("ports", [])}
    listeners = spec.get("environment", {}).get("KAFKA_LISTENERS", "")
    ports |= {int(part.rsplit(":", 1)[-1]) for part in listeners.split(",") if part}
    command = [str(c) for c in spec.get("command", [])]
    ports |= {int(command[i + 1]) for i, c in enumerate(command[:-1]) if c in ("--port", "--webui-port")}
    return ports


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned_to_a_version(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest" and any(ch.isdigit() for ch in tag), image


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck", {})
    assert check.get("test") and check.get("interval") and check.get("retries"), name


def test_depends_on_names_defined_services_with_a_condition_that_fits() -> None:
    for name, spec in SERVICES.items():
        for target, how in spec.get("depends_on", {}).items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            wanted = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert how["condition"] == wanted, (name, target, how)


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, spec in SERVICES.items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_project_containers_reach_services_the_file_defines() -> None:
    env = COMPOSE["x-workbook-env"]
    addresses = {
        "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
        "ICEBERG_REST_URI": urlparse(env["ICEBERG_REST_URI"]).netloc,
        "ROMAN_SERVICE_URL": urlparse(env["ROMAN_SERVICE_URL"]).netloc,
        "FLINK_REST_URL": urlparse(env["FLINK_REST_URL"]).netloc,
        "S3_ENDPOINT": urlparse(env["S3_ENDPOINT"]).netloc,
        "SPARK_MASTER": urlparse(env["SPARK_MASTER"]).netloc,
        "SPARK_MASTER_WEBUI_URL": urlparse(env["SPARK_MASTER_WEBUI_URL"]).netloc,
    }
    for variable, address in addresses.items():
        host, _, port = address.partition(":")
        assert host in SERVICES, f"{variable} names {host}, which is not a service"
        assert int(port) in _container_port(host), f"{variable}: {host} does not listen on {port}"


def test_the_containers_run_in_the_s3_and_cluster_modes() -> None:
    env = COMPOSE["x-workbook-env"]
    assert (env["WAREHOUSE"], env["CLUSTER"]) == ("s3", "1")
    assert SERVICES["flink-taskmanager"]["deploy"]["replicas"] == 2
    assert "taskmanager.load-balance.mode: slots" in COMPOSE["x-flink"]["environment"]["FLINK_PROPERTIES"]


def test_the_published_ports_are_the_embedded_stacks_defaults() -> None:
    """A notebook run on the host reaches the compose stack with no variable set at all."""
    defaults = {
        "kafka": config.KAFKA_BOOTSTRAP_SERVERS[1].rsplit(":", 1)[-1],
        "iceberg-rest": urlparse(config.ICEBERG_REST_URI[1]).port,
        "roman-service": urlparse(config.ROMAN_SERVICE_URL[1]).port,
        "flink-jobmanager": urlparse(config.FLINK_REST_URL[1]).port,
        "s3": urlparse(config.S3_ENDPOINT[1]).port,
        "spark-master": urlparse(config.SPARK_MASTER_WEBUI_URL[1]).port,
    }
    for service, port in defaults.items():
        published = {p.split(":")[1] for p in SERVICES[service]["ports"]}
        assert str(port) in published, (service, published)


def test_airflow_runs_as_its_own_compose_file_does_with_the_dags_mounted() -> None:
    components = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"}
    assert components <= set(SERVICES)
    env = COMPOSE["x-airflow"]["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/workbook/dags" and ".:/workbook" in COMPOSE["x-airflow"]["volumes"]
    # a slot per DAG (each runs one task at a time): a sensor poking for its upstream never holds that job's slot
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and int(env["AIRFLOW__CORE__PARALLELISM"]) >= len(JOBS)
    assert env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "1"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == COMPOSE["x-workbook-env"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert SERVICES["airflow-apiserver"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "CLUSTER" in s.get("environment", {})))
def test_every_project_container_treats_the_stack_as_external(name: str) -> None:
    """In a container the services are the other containers: a notebook's `setup` must not try to start an
    embedded Kafka (binding kafka:19092 there fails with EADDRNOTAVAIL), only ask each service."""
    assert SERVICES[name]["environment"]["STACK"] == "external"
