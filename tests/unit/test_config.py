from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lib.config import ROOT, redact_url, settings
from lib.errors import ConfigError


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
    assert cfg.iceberg_warehouse == "s3://warehouse/"
    assert cfg.warehouse == "s3" and cfg.file_io_properties["s3.endpoint"] == "http://127.0.0.1:9000"
    assert (cfg.cluster, cfg.spark_master, cfg.taskmanagers) == (False, "local[2]", 1)


def test_file_mode_keeps_the_warehouse_under_the_stack_home_without_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STACK_HOME", "ICEBERG_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAREHOUSE", "file")
    cfg = settings()
    assert cfg.iceberg_warehouse == (ROOT / ".stack" / "warehouse").as_uri()
    assert (cfg.warehouse, cfg.file_io_properties) == ("file", {})


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
    monkeypatch.setenv("ICEBERG_REST_URI", "http://rest")  # a URL, but health checks need its port
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
    [("WAREHOUSE", "hdfs", "use s3"), ("CLUSTER", "maybe", "use 1"), ("SPARK_MASTER", "yarn", "spark://host:port"),
     ("EVENT_SCHEMA_VERSION", "3", "use 1 .the default. or 2")],
)
def test_bad_modes_say_what_is_accepted(monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=needle):
        settings()


@pytest.mark.parametrize(
    "url",
    ["hooks.example.com/services/secret", "ftp://hooks.example.com/services/secret", "http:///services/secret",
     "http://hooks.example.com:99999/services/secret", "http://hooks.example.com:x/services/secret",
     "http://hooks.example.com:0/services/secret", "https://hooks.example.com/services/sec ret",
     "https://hooks.example.com/services/sécret"],
    ids=["no-scheme", "not-http", "no-host", "port-too-big", "port-not-a-number", "port-zero", "space", "non-ascii"],
)
def test_a_webhook_url_urllib_cannot_post_to_is_refused_when_read(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    with pytest.raises(ConfigError, match=r"ALERT_WEBHOOK_URL=.*http:// or https:// URL with a host.*unset it") as err:
        settings()
    assert "secret" not in str(err.value) and "sec ret" not in str(err.value)  # a webhook's path is its secret


@pytest.mark.parametrize("url", ["https://hooks.example.com/services/T0/B0/x", "http://127.0.0.1:8080/alerts",
                                 "http://[::1]:8080/alerts?token=a%20b"])
def test_a_usable_webhook_url_is_kept(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    assert settings().alert_webhook_url == url


def test_the_webhook_deadline_is_ten_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERT_WEBHOOK_TIMEOUT_S", raising=False)
    assert settings().alert_webhook_timeout_s == 10.0
    monkeypatch.setenv("ALERT_WEBHOOK_TIMEOUT_S", "2.5")
    assert settings().alert_webhook_timeout_s == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "ten", "nan", "inf", "301"])
def test_a_webhook_deadline_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_TIMEOUT_S", value)
    with pytest.raises(ConfigError, match=r"ALERT_WEBHOOK_TIMEOUT_S=.* above 0 and at most 300"):
        settings()


def test_redacted_urls_keep_where_they_point_only() -> None:
    assert redact_url("https://hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/..."
    assert redact_url("http://user:pw@h:8080/x?y") == "http://...@h:8080/..."
    assert redact_url("http://h?token=x") == "http://h/..."
    assert redact_url("http://h:9") == "http://h:9"


@pytest.mark.parametrize(
    "topic",
    ["roman conversions", "x'; DROP TABLE lake.bronze.events; --", ".", "..", "a" * 250, "events/1", "événements"],
    ids=["space", "quote", "dot", "dot-dot", "250-chars", "slash", "non-ascii"],
)
def test_an_events_topic_kafka_would_refuse_is_refused_before_it_reaches_sql(
        monkeypatch: pytest.MonkeyPatch, topic: str) -> None:
    monkeypatch.setenv("EVENTS_TOPIC", topic)
    rule = r"EVENTS_TOPIC=.*1 to 249 letters, digits, '\.', '_' or '-'.*roman-conversions"
    with pytest.raises(ConfigError, match=rule):
        settings()


@pytest.mark.parametrize("topic", ["a" * 249, "roman.conversions_v2-1", "..."])
def test_a_legal_topic_is_kept(monkeypatch: pytest.MonkeyPatch, topic: str) -> None:
    monkeypatch.setenv("EVENTS_TOPIC", topic)
    assert settings().events_topic == topic


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092', 'x' = 'y", "host:port"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:0", "ports 1-65535"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:70000", "ports 1-65535"),
        ("ICEBERG_REST_URI", "localhost", "http:// or https:// URL"),
        ("ICEBERG_REST_URI", "http://rest:8181/it's", "no quote"),
        ("ICEBERG_WAREHOUSE", "/data/warehouse", "URI with a scheme"),
        ("ICEBERG_WAREHOUSE", "s3://warehouse/it's", "no quote"),
        ("S3_ENDPOINT", "http://s3:9000/\\", "no quote, backslash"),
        ("S3_BUCKET", "Ware_House", "legal S3 bucket name"),
        ("S3_BUCKET", "ab", "3 to 63"),
        ("S3_REGION", "us east 1", "lower-case letters, digits and '-'"),
        ("S3_ACCESS_KEY_ID", "key'", "without spaces, quotes"),
    ],
)
def test_settings_written_into_sql_state_their_rule(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                    rule: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as err:
        settings()
    assert rule in str(err.value)


def test_an_s3_secret_that_breaks_sql_is_refused_without_being_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "hunter2' OR 'x")
    with pytest.raises(ConfigError, match=r"S3_SECRET_ACCESS_KEY \(not shown\)") as err:
        settings()
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("KAFKA_BOOTSTRAP_SERVERS", "kafka:29092, other:29092"), ("KAFKA_BOOTSTRAP_SERVERS", "[::1]:9092"),
     ("ICEBERG_WAREHOUSE", "file:///data/warehouse"), ("ICEBERG_WAREHOUSE", "s3a://lake-1/prefix/"),
     ("S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY=")],
)
def test_ordinary_values_pass(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    settings()


def test_the_file_warehouse_under_an_odd_stack_home_is_percent_encoded(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    monkeypatch.delenv("ICEBERG_WAREHOUSE", raising=False)
    monkeypatch.setenv("WAREHOUSE", "file")
    monkeypatch.setenv("STACK_HOME", f"{tmp_path}/it's a stack")
    assert "%27" in settings().iceberg_warehouse


def test_replace_cannot_sneak_a_value_into_sql_either() -> None:
    with pytest.raises(ConfigError, match="EVENTS_TOPIC"):
        replace(settings(), events_topic="t' OR '1'='1")
    with pytest.raises(ConfigError, match="catalog_name"):
        replace(settings(), catalog_name="lake; DROP TABLE x")
