from __future__ import annotations

import pytest

from lib.config import ROOT, settings


def test_defaults_point_at_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "ICEBERG_REST_URI", "ROMAN_SERVICE_URL", "FLINK_REST_URL",
                 "EVENTS_TOPIC", "STACK_HOME", "ICEBERG_WAREHOUSE", "WAREHOUSE", "CLUSTER", "SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    cfg = settings()
    assert cfg.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert cfg.events_topic == "roman-conversions"
    assert cfg.events_partitions == 3
    assert cfg.iceberg_rest_uri == "http://127.0.0.1:8181"
    assert cfg.roman_service_url == "http://127.0.0.1:8000"
    assert cfg.flink_rest_url == "http://127.0.0.1:8081"
    assert cfg.stack_home == ROOT / ".stack"
    assert cfg.iceberg_warehouse == (ROOT / ".stack" / "warehouse").as_uri()
    assert (cfg.warehouse, cfg.file_io_properties) == ("file", {})
    assert (cfg.cluster, cfg.spark_master, cfg.taskmanagers) == (False, "local[2]", 1)


def test_environment_overrides_every_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:29092,other:29092")
    monkeypatch.setenv("ICEBERG_REST_URI", "http://rest:8181/")
    monkeypatch.setenv("ICEBERG_WAREHOUSE", "s3://warehouse/")
    cfg = settings()
    assert str(cfg.kafka_address) == "kafka:29092"
    assert cfg.iceberg_rest_uri == "http://rest:8181"
    assert (cfg.catalog_address.host, cfg.catalog_address.port) == ("rest", 8181)
    assert cfg.iceberg_warehouse == "s3://warehouse/"


def test_blank_variable_falls_back_to_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_TOPIC", "  ")
    assert settings().events_topic == "roman-conversions"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("EVENTS_PARTITIONS", "zero", "EVENTS_PARTITIONS"),
        ("EVENTS_PARTITIONS", "0", "EVENTS_PARTITIONS"),
        ("SPARK_SHUFFLE_PARTITIONS", "-1", "SPARK_SHUFFLE_PARTITIONS"),
    ],
)
def test_bad_numbers_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=needle):
        settings()


def test_bad_addresses_say_what_shape_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEBERG_REST_URI", "localhost")
    with pytest.raises(ValueError, match="host and a port"):
        _ = settings().catalog_address
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "nohostport")
    with pytest.raises(ValueError, match="host:port"):
        _ = settings().kafka_address


def test_s3_mode_puts_the_warehouse_in_the_bucket_through_s3fileio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ICEBERG_WAREHOUSE", raising=False)
    monkeypatch.setenv("WAREHOUSE", "S3")
    monkeypatch.setenv("S3_BUCKET", "lakehouse")
    cfg = settings()
    assert cfg.iceberg_warehouse == "s3://lakehouse/"
    io = cfg.file_io_properties
    assert io["io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert io["s3.endpoint"] == "http://127.0.0.1:9000" and io["s3.path-style-access"] == "true"
    assert str(cfg.s3_address) == "127.0.0.1:9000"


def test_cluster_mode_points_spark_at_the_standalone_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.setenv("CLUSTER", "1")
    cfg = settings()
    assert (cfg.cluster, cfg.spark_master, cfg.taskmanagers) == (True, "spark://127.0.0.1:7077", 2)
    assert str(cfg.spark_master_address) == "127.0.0.1:7077"
    monkeypatch.setenv("SPARK_MASTER", "spark://spark-master:7077")
    assert str(settings().spark_master_address) == "spark-master:7077"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [("WAREHOUSE", "hdfs", "use file"), ("CLUSTER", "maybe", "use 1"), ("SPARK_MASTER", "yarn", "spark://host:port"),
     ("EVENT_SCHEMA_VERSION", "3", "use 1 .the default. or 2")],
)
def test_bad_modes_say_what_is_accepted(monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=needle):
        settings()
