"""The stream job's SQL and parameters, without a cluster: what a learner's settings turn into."""

from __future__ import annotations

import pytest

from lib.__main__ import main
from lib.config import settings
from lib.errors import ParameterError
from lib.stream.job import STREAM_TABLES, StreamJob, named_statements, statements

CFG = settings()


def test_parameters_reach_the_sql_and_the_job_config() -> None:
    job = StreamJob(watermark_delay_s=12, window_minutes=3, dedup_ttl="10 min", idle_timeout_s=0)
    sql = "\n".join(statements(CFG, job))
    assert "WATERMARK FOR stream_time AS stream_time - INTERVAL '12' SECOND" in sql
    assert "INTERVAL '3' MINUTE" in sql
    config = job.config()
    assert config["table.exec.state.ttl"] == "10 min"
    assert config["table.exec.source.idle-timeout"] == "0 ms"
    assert config["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"


def test_every_stream_table_is_created_and_written() -> None:
    sql = "\n".join(statements(CFG, StreamJob()))
    for table in STREAM_TABLES:
        assert f"CREATE TABLE IF NOT EXISTS lake.{table} " in sql
        assert f"INSERT INTO lake.{table}" in sql


def test_the_job_reads_the_topic_and_group_it_is_given() -> None:
    source = statements(CFG, StreamJob(topic="other-topic", group_id="g1"))[0]
    assert "'topic' = 'other-topic'" in source
    assert "'properties.group.id' = 'g1'" in source
    assert "'scan.startup.mode' = 'group-offsets'" in source


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"watermark_delay_s": -1}, "watermark_delay_s"),
    ({"window_minutes": 0}, "window_minutes"),
    ({"dedup_ttl": "forever"}, "dedup_ttl='forever'"),
    ({"checkpoint_interval": "5"}, "checkpoint_interval='5'"),
    ({"topic": "x'; DROP"}, "topic=\"x'; DROP\" is not a legal Kafka topic name"),
    ({"topic": ".."}, "topic='..' is not a legal Kafka topic name"),
    ({"name": "a b"}, "name and group_id"),
])
def test_bad_parameters_are_refused_with_the_fix(kwargs: dict, named: str) -> None:
    with pytest.raises(ParameterError, match="StreamJob") as err:
        StreamJob(**kwargs)
    assert named in str(err.value)


def test_the_cli_refuses_a_bad_ttl_before_it_needs_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "status", "--dedup-ttl", "forever"]) == 2
    assert "dedup_ttl='forever' is not a duration" in capsys.readouterr().err


def test_the_statements_are_named_for_what_they_create_in_submission_order() -> None:
    named = named_statements(settings(), StreamJob())
    order = list(named)
    assert (order[0], order[-1]) == ("table kafka_events", "execute statement set")
    assert {"view classified", "view distinct_events", "view on_time", "view minute_counts"} <= set(named)
    assert "ROW_NUMBER() OVER (PARTITION BY" in named["view distinct_events"]
    assert len(named) == len(statements(settings(), StreamJob()))  # no two statements share a name


def test_a_blackhole_job_writes_every_sink_to_a_blackhole_and_nothing_else() -> None:
    cfg = settings()
    plain, black = statements(cfg, StreamJob()), statements(cfg, StreamJob(blackhole=True))
    inserts = [line.split()[2] for line in black[-1].splitlines() if line.strip().startswith("INSERT INTO")]
    assert len(inserts) == 6 and all(target.startswith("blackhole_") for target in inserts)
    created = [sql for sql in black if sql.startswith("CREATE TEMPORARY TABLE blackhole_")]
    assert len(created) == 6 and all("'connector' = 'blackhole'" in sql and " LIKE " in sql for sql in created)
    # Everything before the sinks (source, classifier, dedup, windows) is the plain job's own SQL.
    assert black[: len(plain) - 1] == plain[:-1]
