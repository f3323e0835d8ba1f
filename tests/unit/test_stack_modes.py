"""Which services each mode of the embedded stack starts, and how it configures Flink and Spark."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lib.config import Settings, settings
from lib.errors import StackError
from lib.medallion.bronze import read_statement
from lib.medallion.jvm import archive_path
from lib.medallion.spark import spark_conf, spark_cores
from lib.stack import down, kill, require_up, running, services, up
from lib.stack.flink import client_environment, flink_config
from lib.stack.process import free_port

BASE = ["kafka", "roman-service", "s3", "iceberg-rest", "flink-jobmanager", "flink-taskmanager"]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("WAREHOUSE", "CLUSTER", "SPARK_MASTER", "ICEBERG_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jars" / "spark").mkdir(parents=True)
    (tmp_path / "jars" / "spark" / "iceberg.jar").touch()
    return replace(settings(), stack_home=tmp_path / "stack", jars_dir=tmp_path / "jars")


def names(cfg: Settings, every_mode: bool = False) -> list[str]:
    return [s.name for s in services(cfg, every_mode)]


def test_the_default_stack_has_the_s3_server_and_no_spark_cluster(cfg: Settings) -> None:
    assert names(cfg) == BASE
    assert names(replace(cfg, warehouse="file")) == [n for n in BASE if n != "s3"]  # WAREHOUSE=file: none
    assert spark_conf(cfg)["spark.master"] == "local[2]"
    assert "spark.executor.memory" not in spark_conf(cfg)


def test_s3_mode_starts_the_s3_server_before_the_catalog(cfg: Settings) -> None:
    found = names(replace(cfg, warehouse="s3"))
    assert found.index("s3") == found.index("iceberg-rest") - 1


def test_cluster_mode_adds_a_taskmanager_and_a_spark_master_and_worker(cfg: Settings) -> None:
    clustered = replace(cfg, cluster=True, spark_master="spark://127.0.0.1:7077")
    assert names(clustered) == [*BASE, "flink-taskmanager-2", "spark-master", "spark-worker"]
    manager = flink_config(clustered)["taskmanager"]
    assert manager["numberOfTaskSlots"] == 2 and manager["load-balance"]["mode"] == "slots"
    conf = spark_conf(clustered)
    assert conf["spark.master"] == "spark://127.0.0.1:7077" and conf["spark.executor.memory"] == "1g"


@pytest.mark.parametrize(("master", "cores"), [("local[2]", 2), ("local[1]", 1), ("local", 1),
                                                ("spark://127.0.0.1:7077", 2)])
def test_bronze_reads_kafka_in_twice_as_many_tasks_as_spark_has_cores(cfg: Settings, master: str,
                                                                      cores: int) -> None:
    shaped = replace(cfg, spark_master=master)
    assert spark_cores(shaped) == cores
    assert f"'minPartitions' '{2 * cores}'" in read_statement(shaped, {0: (0, 10), 1: (0, 10), 2: (5, 9)}).sql


def test_down_knows_the_services_of_every_mode(cfg: Settings) -> None:
    # A stack started with CLUSTER=1 WAREHOUSE=s3, and Airflow beside it, are stopped by a plain `stack down` too.
    every = set(names(cfg, every_mode=True))
    assert set(names(replace(cfg, warehouse="s3", cluster=True))) | {
        "airflow-api-server", "airflow-dag-processor", "airflow-scheduler"} == every


def test_a_service_that_is_down_is_named_with_the_setting_that_points_elsewhere() -> None:
    """require_up names the service that did not answer and only the setting that moves it (the catalog
    pointed at a port nothing listens on, whether or not a stack runs)."""
    free = free_port()
    cfg = replace(settings(), warehouse="file", iceberg_rest_uri=f"http://127.0.0.1:{free}")  # no S3 server asked
    with pytest.raises(StackError) as raised:
        require_up(cfg, ["iceberg-rest"])
    message = str(raised.value)
    assert f"iceberg-rest (127.0.0.1:{free}) did not answer" in message and "point ICEBERG_REST_URI at" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" not in message and "FLINK_REST_URL" not in message


def test_in_s3_mode_a_job_that_needs_the_catalog_needs_the_s3_server_too() -> None:
    """The catalog answers without the S3 server, but no table can be read or written: the server the
    warehouse lives on is named with the catalog, and the setting that moves it."""
    ports = [free_port(), free_port()]
    cfg = replace(settings(), warehouse="s3", iceberg_rest_uri=f"http://127.0.0.1:{ports[0]}",
                  s3_endpoint=f"http://127.0.0.1:{ports[1]}")
    with pytest.raises(StackError) as raised:
        require_up(cfg, ["iceberg-rest"])
    assert f"s3 (127.0.0.1:{ports[1]}), iceberg-rest (127.0.0.1:{ports[0]}) did not answer" in str(raised.value)
    assert "S3_ENDPOINT" in str(raised.value)
    with pytest.raises(StackError) as raised:
        require_up(replace(cfg, warehouse="file"), ["iceberg-rest"])
    assert "s3" not in str(raised.value).split("did not answer")[0]


def test_stack_external_is_read_from_the_environment_and_a_typo_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK", "External")
    assert settings().external
    monkeypatch.setenv("STACK", "compose")
    with pytest.raises(ValueError, match=r"STACK='compose': use embedded .* or external"):
        settings()
    monkeypatch.delenv("STACK")
    assert not settings().external


def test_an_external_stack_is_only_asked_never_started(cfg: Settings) -> None:
    """`stack up` with STACK=external starts nothing (no pid file, no log) and names what did not answer."""
    outside = replace(cfg, external=True, warehouse="file", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(StackError) as raised:
        up(outside, ["kafka"], quiet=True)
    assert f"kafka (127.0.0.1:{outside.kafka_address.port}) did not answer" in str(raised.value)
    assert not list(cfg.stack_home.glob("run/*.pid")) and not list(cfg.stack_home.glob("logs/*"))
    assert running(outside) == set()


@pytest.mark.parametrize("step", ["down", "kill"])
def test_an_external_stack_is_never_stopped_and_the_message_says_how_by_hand(cfg: Settings, step: str) -> None:
    outside = replace(cfg, external=True)
    with pytest.raises(StackError) as raised:
        down(outside, ["kafka"]) if step == "down" else kill(outside, "kafka")
    message = str(raised.value)
    assert "STACK=external" in message and "docker compose stop kafka" in message and "STACK=embedded" in message


def test_executors_run_udfs_on_the_drivers_python_unless_told_another(cfg: Settings) -> None:
    assert spark_conf(cfg)["spark.pyspark.python"] == sys.executable
    there = replace(cfg, spark_executor_python="/usr/local/bin/python")
    assert spark_conf(there)["spark.pyspark.python"] == "/usr/local/bin/python"
    assert spark_conf(there)["spark.pyspark.driver.python"] == sys.executable


def test_a_pyflink_client_on_an_empty_stack_home_gets_the_connectors_on_its_classpath(tmp_path: Path) -> None:
    """In a container (STACK=external) no Flink of this stack wrote STACK_HOME/flink: submitting the stream must
    still give PyFlink a FLINK_LIB_DIR with the connector jars and a FLINK_CONF_DIR with a config, and must not
    rewrite them on every submit (the embedded cluster reads the same folder)."""
    cfg = replace(settings(), stack_home=tmp_path / "stack", external=True)
    env = client_environment(cfg)
    jars = {p.name for p in Path(env["FLINK_LIB_DIR"]).iterdir()}
    connectors = {p.name for p in (cfg.jars_dir / "flink").glob("*.jar")}
    assert connectors and connectors <= jars
    assert any(name.startswith("flink-python-") for name in jars)
    config_yaml = Path(env["FLINK_CONF_DIR"]) / "config.yaml"
    written = config_yaml.stat().st_mtime_ns
    assert client_environment(cfg) == env and config_yaml.stat().st_mtime_ns == written
    # The cluster elsewhere keeps its own checkpoint and savepoint folders: a client path must not reach the job.
    text = config_yaml.read_text()
    assert "checkpoint" not in text and "savepoint" not in text and str(cfg.flink_address.port) in text


def test_the_driver_maps_the_class_archive_when_there_is_one_and_keeps_the_quick_jit(cfg: Settings) -> None:
    java = spark_conf(cfg)["spark.driver.extraJavaOptions"].split()
    assert "-XX:TieredStopAtLevel=1" in java
    assert not [o for o in java if o.startswith("-XX:SharedArchiveFile")]  # no archive made: none asked for
    archive_path(cfg).write_bytes(b"")
    java = spark_conf(cfg)["spark.driver.extraJavaOptions"].split()
    assert f"-XX:SharedArchiveFile={archive_path(cfg)}" in java
    assert "-Xlog:cds=off" in java  # a JVM that cannot map it says nothing in a notebook's cell
    full = spark_conf(replace(cfg, spark_jit="full"))["spark.driver.extraJavaOptions"].split()
    assert not [o for o in full if o.startswith("-XX:TieredStopAtLevel")]
    assert "spark.executor.extraJavaOptions" in spark_conf(cfg)
    assert "SharedArchiveFile" not in spark_conf(cfg)["spark.executor.extraJavaOptions"]


def test_an_unknown_jit_mode_is_named_with_the_two_that_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_JIT", "fast")
    with pytest.raises(ValueError, match=r"SPARK_JIT='fast'.*quick.*full"):
        settings()
    monkeypatch.setenv("SPARK_JIT", "FULL")
    assert settings().spark_jit == "full"
