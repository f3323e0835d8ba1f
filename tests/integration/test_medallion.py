"""Bronze, Silver and Gold on the real stack: exact counts from the manifest, every invariant,
re-runs, overlapping intervals, backfills and injected crashes."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import NewPartitions

from lib import faults
from lib.config import Settings
from lib.errors import InjectedCrash
from lib.kafka import admin, connect_producer, ensure_topic
from lib.medallion.bronze import committed_positions, run_bronze
from lib.medallion.catalog import catalog, keep_raw_payload
from lib.medallion.engine_errors import is_already_exists, is_commit_conflict, java_classes
from lib.medallion.gold import run_gold
from lib.medallion.invariants import batch_accounted, check_all, kafka_accounted
from lib.medallion.migration import current_snapshot, run_migration, snapshot_before_column
from lib.medallion.silver import run_silver
from lib.medallion.spark import spark_session
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    GOLD_CLIENTS,
    GOLD_DAILY,
    SILVER_EVENTS,
    SILVER_REJECTED,
    has_column,
)
from lib.traffic.manifest import batch_event_ids
from lib.traffic.produce import produce
from tests.poison import poison

pytestmark = pytest.mark.integration
TABLES = (BRONZE_EVENTS, BRONZE_DEAD_LETTER, SILVER_EVENTS, SILVER_REJECTED, GOLD_DAILY)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def spark(live_stack: Settings):
    session = spark_session(live_stack)
    # Land whatever earlier tests left in the topic, so each test below starts from a drained topic.
    run_bronze(session, live_stack)
    run_silver(session, *EVER)
    run_gold(session, *EVER)
    return session


def counts(spark) -> dict[str, int]:
    return {t: spark.table(t).count() for t in TABLES}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in TABLES}


def now() -> datetime:
    return datetime.now(UTC)


def fresh_seed() -> int:
    return random.SystemRandom().randrange(10**9)


def assert_invariants(spark, cfg: Settings) -> None:
    failed = [c for c in check_all(spark, cfg) if not c.ok]
    assert not failed, failed


def test_layers_reach_the_manifest_counts_and_reruns_change_nothing(cfg: Settings, spark) -> None:
    before = counts(spark)
    t0 = now()
    manifest = produce(cfg, 600, seed=fresh_seed(), progress=False, save=False)
    first = run_bronze(spark, cfg)
    assert first.records_read == manifest.records
    assert first.duplicates_in_batch == manifest.duplicates
    assert first.events_inserted == manifest.distinct_events
    assert first.dead_letters_inserted == manifest.malformed_total
    again = run_bronze(spark, cfg)
    assert again.records_read == 0 and again.events_inserted == 0
    # Silver twice, with overlapping intervals of ingestion time.
    mid = now()
    run_silver(spark, t0 - timedelta(hours=1), mid)
    overlap = run_silver(spark, t0 - timedelta(minutes=5), mid + timedelta(seconds=1))
    assert overlap.inserted == 0 and overlap.rejected_inserted == 0
    run_gold(spark, t0 - timedelta(hours=1), now() + timedelta(seconds=1))
    run_gold(spark, t0 - timedelta(hours=1), now() + timedelta(seconds=1))
    grown = delta(counts(spark), before)
    assert grown[BRONZE_EVENTS] == manifest.distinct_events
    assert grown[BRONZE_DEAD_LETTER] == manifest.malformed_total
    assert grown[SILVER_EVENTS] == manifest.requests
    assert grown[SILVER_REJECTED] == manifest.invalid_events
    assert_invariants(spark, cfg)


def test_gold_stays_a_full_recompute_when_keys_arrive_in_several_intervals(cfg: Settings, spark) -> None:
    # Two batches with the same users and the same event dates, processed by separate Silver runs;
    # Gold runs once per Silver interval. A naive "aggregate the interval and overwrite" would keep
    # only the second batch's counts for every shared key.
    start = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    intervals = []
    for _ in range(2):
        produce(cfg, 300, seed=fresh_seed(), start=start, progress=False, save=False)
        run_bronze(spark, cfg)
        began = now()
        time.sleep(0.01)
        run_silver(spark, *EVER)
        intervals.append((began, now() + timedelta(milliseconds=1)))
    for interval in intervals:
        run_gold(spark, *interval)
    shared = spark.sql(f"""
        SELECT COUNT(*) FROM (SELECT event_date, user_id FROM {SILVER_EVENTS}
        WHERE processed_at >= TIMESTAMP '{intervals[0][0].replace(tzinfo=None)}'
        GROUP BY event_date, user_id HAVING COUNT(DISTINCT processed_at) > 1)""").first()[0]
    assert shared > 0, "the two batches must share (event_date, user_id) keys for this test to mean anything"
    assert_invariants(spark, cfg)


def test_backfill_merges_without_duplicates_and_leaves_the_position_alone(cfg: Settings, spark) -> None:
    manifest = produce(cfg, 300, seed=fresh_seed(), progress=False, save=False)
    run_bronze(spark, cfg)
    position = committed_positions(spark, manifest.topic)
    before = counts(spark)
    lo = datetime.fromisoformat(manifest.first_event_time) - timedelta(days=4)
    hi = datetime.fromisoformat(manifest.last_event_time) + timedelta(minutes=1)
    backfill = run_bronze(spark, cfg, backfill=True, start=lo, end=hi)
    assert backfill.records_read > 0
    assert backfill.events_inserted == 0
    assert counts(spark) == before
    assert committed_positions(spark, manifest.topic) == position
    accounted = kafka_accounted(spark, cfg)
    assert accounted.ok and accounted.figures["landed ahead of the committed offsets"] == 0, accounted.detail


@pytest.mark.parametrize("point", ["bronze.after_events", "bronze.before_offsets"])
def test_a_crash_then_a_rerun_gives_the_tables_of_a_clean_run(cfg: Settings, spark, point: str) -> None:
    before = counts(spark)
    position = committed_positions(spark, "roman-conversions")
    manifest = produce(cfg, 400, seed=fresh_seed(), progress=False, save=False)
    faults.crash_at(point)
    try:
        with pytest.raises(InjectedCrash):
            run_bronze(spark, cfg)
    finally:
        faults.crash_at(None)
    # The offsets were not committed: the next run reads the same range again.
    assert committed_positions(spark, manifest.topic) == position
    rerun = run_bronze(spark, cfg)
    assert rerun.records_read == manifest.records
    grown = delta(counts(spark), before)
    assert grown[BRONZE_EVENTS] == manifest.distinct_events
    assert grown[BRONZE_DEAD_LETTER] == manifest.malformed_total
    run_silver(spark, *EVER)
    run_gold(spark, *EVER)
    assert_invariants(spark, cfg)


def test_a_range_of_only_duplicates_is_not_read_again(cfg: Settings, spark) -> None:
    seed = fresh_seed()
    start = now().replace(second=0, microsecond=0)
    produce(cfg, 200, seed=seed, start=start, progress=False, save=False)
    run_bronze(spark, cfg)
    replay = produce(cfg, 200, seed=seed, start=start, progress=False, save=False)  # the very same records again
    replayed = run_bronze(spark, cfg)
    assert replayed.records_read == replay.records
    assert replayed.events_inserted == 0
    # A malformed record sent again is a new Kafka record (new coordinates): a new dead letter.
    assert replayed.dead_letters_inserted == replay.malformed_total
    # The replay's own check finds each event where its first delivery landed: the earlier range.
    check = batch_accounted(spark, cfg, replayed.ranges)
    assert check.ok, check.detail
    assert check.figures["found at earlier offsets"] == replay.distinct_events
    assert check.figures["bronze events at these offsets"] == 0
    assert run_bronze(spark, cfg).records_read == 0


def test_a_runs_own_check_finds_a_lost_a_doubled_and_an_unknown_row(cfg: Settings, spark) -> None:
    """The scheduled run checks its ranges only: each kind of damage to those rows must still show."""
    topic = f"test-batch-check-{uuid.uuid4().hex[:8]}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, 1)
    on_topic = replace(cfg, events_topic=topic, events_partitions=1)
    manifest = produce(on_topic, 200, seed=fresh_seed(), progress=False, save=False)
    assert manifest.malformed_total > 0
    run = run_bronze(spark, on_topic)
    assert batch_accounted(spark, on_topic, run.ranges).ok
    offsets = [r.kafka_offset for r in spark.table(BRONZE_EVENTS).where(f"kafka_topic = '{topic}'")
               .orderBy("kafka_offset").select("kafka_offset").limit(3).collect()]
    letter = spark.table(BRONZE_DEAD_LETTER).where(f"kafka_topic = '{topic}'").agg({"kafka_offset": "min"}).first()[0]
    at = f"kafka_topic = '{topic}' AND kafka_offset"
    before = {t: current_snapshot(spark, t) for t in (BRONZE_EVENTS, BRONZE_DEAD_LETTER)}
    try:
        spark.sql(f"DELETE FROM {BRONZE_EVENTS} WHERE {at} = {offsets[0]}")  # a lost event
        spark.sql(f"INSERT INTO {BRONZE_EVENTS} SELECT * FROM {BRONZE_EVENTS} WHERE {at} = {offsets[1]}")  # doubled
        spark.sql(f"""INSERT INTO {BRONZE_EVENTS}  -- a row no record of the topic holds
            SELECT 'not-on-the-topic', event_time, event_date, user_id, payload, kafka_topic, kafka_partition,
                   kafka_offset, kafka_timestamp, ingested_at FROM {BRONZE_EVENTS} WHERE {at} = {offsets[2]}""")
        spark.sql(f"DELETE FROM {BRONZE_DEAD_LETTER} WHERE {at} = {letter}")  # a lost dead letter
        damaged = batch_accounted(spark, on_topic, run.ranges)
    finally:
        for table, snapshot in before.items():
            spark.sql(f"CALL {cfg.catalog_name}.system.rollback_to_snapshot('{table}', {snapshot})")
            spark.catalog.refreshTable(table)
    assert not damaged.ok
    assert {k: damaged.figures[k] for k in ("missing events", "doubled event_ids", "unknown events",
                                           "missing dead letters", "unknown dead letters")} == {
        "missing events": 1, "doubled event_ids": 1, "unknown events": 1, "missing dead letters": 1,
        "unknown dead letters": 0}
    repaired = batch_accounted(spark, on_topic, run.ranges)
    assert repaired.ok, repaired.detail


def test_a_partition_added_later_is_read_from_its_earliest_offset(cfg: Settings, spark) -> None:
    topic = f"test-grow-{uuid.uuid4().hex[:8]}"
    one = replace(cfg, events_topic=topic, events_partitions=1)
    ensure_topic(cfg.kafka_bootstrap_servers, topic, 1)
    produce(one, 100, seed=fresh_seed(), progress=False, save=False)
    assert set(run_bronze(spark, one).ranges) == {0}
    client = admin(cfg.kafka_bootstrap_servers)
    client.create_partitions({topic: NewPartitions(total_count=2)})
    client.close()
    two = replace(one, events_partitions=2)
    second = produce(two, 100, seed=fresh_seed(), progress=False, save=False)
    run = run_bronze(spark, two)
    assert run.ranges[1] == (0, second.per_partition[1])
    assert run.records_read == second.records


def test_poison_records_land_with_their_reasons_and_every_invariant_holds(cfg: Settings, spark) -> None:
    """One record of each kind a parser cannot hold (not UTF-8, 100,000 levels deep, a 5,000-digit number,
    NaN, a duplicate key, a lone surrogate; events with a 5,000-digit input, an infinite latency, a year
    10000 time) among ordinary events: Bronze and Silver succeed, each poison record is a dead letter or
    a reject with its reason, and every invariant holds for the topic."""
    records = poison()
    topic = f"test-poison-{uuid.uuid4().hex[:8]}"  # its own topic: the notebooks count the events topic's reasons
    ensure_topic(cfg.kafka_bootstrap_servers, topic, 1)
    on_topic = replace(cfg, events_topic=topic, events_partitions=1)
    producer = connect_producer(cfg.kafka_bootstrap_servers, "test-poison")
    for value, _, _ in records:
        producer.produce(topic, key=b"poison", value=value)
    assert producer.flush(30) == 0
    produce(on_topic, 40, seed=fresh_seed(), progress=False, save=False)
    bronze = run_bronze(spark, on_topic)
    run_silver(spark, *EVER)
    run_gold(spark, *EVER)
    dead = catalog(cfg).load_table(BRONZE_DEAD_LETTER).scan(row_filter=f"kafka_topic == '{topic}'").to_pandas()
    by_payload = {bytes(r.payload): r.reason for r in dead.itertuples()}
    rejected = spark.sql(f"SELECT r.reason, b.payload FROM {SILVER_REJECTED} r JOIN {BRONZE_EVENTS} b "
                         f"USING (event_id) WHERE b.kafka_topic = '{topic}'").collect()
    rejects = {row.payload.encode(): row.reason for row in rejected}
    for value, where, why in records:
        landed = by_payload if where == "dead_letter" else rejects
        assert value in landed and landed[value].startswith(why), (why, landed.get(value))
    assert bronze.dead_letters_inserted == len(dead)  # this run wrote every dead letter of the topic
    not_utf8 = dead[dead.reason == "not UTF-8 text"]  # read whole by PyIceberg: raw bytes beside their text
    assert list(not_utf8.payload_text) == [records[0][0].decode(errors="replace")]
    assert_invariants(spark, on_topic)


def test_a_create_of_an_existing_table_is_known_by_its_jvm_class(spark) -> None:
    with pytest.raises(Exception) as raised:
        spark.sql(f"CREATE TABLE {BRONZE_EVENTS} (x INT) USING iceberg")
    assert java_classes(raised.value) or raised.value.getCondition() == "TABLE_OR_VIEW_ALREADY_EXISTS"
    assert is_already_exists(raised.value) and not is_commit_conflict(raised.value)


def test_an_old_dead_letter_table_is_migrated_to_raw_bytes(cfg: Settings, spark) -> None:
    name = f"bronze.old_dead_letter_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE TABLE {name} (kafka_offset BIGINT, payload STRING, reason STRING) USING iceberg")
    spark.sql(f"INSERT INTO {name} VALUES (1, 'not json', 'not JSON: JSONDecodeError')")
    assert keep_raw_payload(cfg, name) and not keep_raw_payload(cfg, name)
    spark.catalog.refreshTable(name)  # the session cached the old schema
    spark.sql(f"INSERT INTO {name} (kafka_offset, payload, reason, payload_text) "
              "VALUES (2, X'FF', 'not UTF-8 text', '\uFFFD')")
    rows = catalog(cfg).load_table(name).scan().to_pandas().sort_values("kafka_offset")
    assert list(rows.payload_text) == ["not json", "\ufffd"] and list(rows.payload) == [None, b"\xff"]
    spark.sql(f"DROP TABLE {name} PURGE")



def test_v1_and_v2_land_then_the_migration_fills_client_once_and_time_travel_keeps_the_old_schema(
        cfg: Settings, spark) -> None:
    # Silver as it was before event schema v2: on a stack where the migration already ran (a second
    # `make test`), its column goes away first, so the real migration runs every time.
    if has_column(spark, SILVER_EVENTS, "client"):
        spark.sql(f"ALTER TABLE {SILVER_EVENTS} DROP COLUMN client")
    # What earlier tests landed in Bronze from their own topics goes to Silver first: the counts below are this batch's.
    run_silver(spark, *EVER)
    manifest = produce(cfg, 400, seed=fresh_seed(), progress=False, save=False)
    assert 0 < manifest.v2_requests < manifest.requests  # the topic holds both versions
    before = counts(spark)
    run_bronze(spark, cfg)
    run_silver(spark, *EVER)
    grown = delta(counts(spark), before)
    assert grown[BRONZE_EVENTS] == manifest.distinct_events and grown[SILVER_EVENTS] == manifest.requests
    assert grown[SILVER_REJECTED] == manifest.invalid_events  # a v2 event is valid, in Silver, without its client
    assert not has_column(spark, SILVER_EVENTS, "client")
    old_columns = spark.table(SILVER_EVENTS).columns

    first = run_migration(spark, *EVER)
    assert first.columns_added == [f"{SILVER_EVENTS}.client"]
    assert first.to_fill == first.filled >= manifest.v2_requests
    ids = batch_event_ids(manifest.to_dict(), cfg.events_partitions)
    batch = spark.createDataFrame([(i,) for i in sorted(ids["events"])], "event_id STRING")
    rows = spark.table(SILVER_EVENTS).join(batch, "event_id", "left_semi") \
        .select("event_id", "schema_version", "client").toPandas()
    assert len(rows) == manifest.requests
    v2 = rows[rows.event_id.isin(ids["v2"])]
    assert len(v2) == manifest.v2_requests and v2.client.notna().all() and (v2.schema_version == 2).all()
    assert rows[~rows.event_id.isin(ids["v2"])].client.isna().all()

    snapshot = current_snapshot(spark, SILVER_EVENTS)
    second = run_migration(spark, *EVER)
    assert (second.columns_added, second.to_fill, second.filled) == ([], 0, 0)
    assert current_snapshot(spark, SILVER_EVENTS) == snapshot  # nothing committed the second time

    before_migration = snapshot_before_column(cfg, SILVER_EVENTS, "client")
    assert before_migration is not None
    old = spark.sql(f"SELECT * FROM {SILVER_EVENTS} VERSION AS OF {before_migration}")
    assert old.columns == old_columns and "client" not in old.columns
    assert spark.table(SILVER_EVENTS).columns == [*old_columns, "client"]

    # Gold's next run covers the migration's re-processing: the per-client breakdown appears.
    run_gold(spark, *EVER)
    assert spark.table(GOLD_CLIENTS).count() > 0
    checks = check_all(spark, cfg, layers=("silver", "gold"))
    assert {c.name for c in checks} >= {"silver's client = the raw payload's, for every v2 event",
                                        "gold per client = full recompute from silver"}
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
