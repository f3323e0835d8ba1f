"""The Spark driver JVM's start: a class-data archive and the quick JIT tier.

Every job is a fresh process, and most of a small job's time was the JVM warming up, not work: on
this 2-core machine a Bronze job over 2,000 records took 41 s in a fresh JVM, 34 s with the classes
it loads mapped from an archive (class-data sharing), and 24 s with the JIT kept at its first,
quick tier as well. Even a cold Bronze run over 321k records was faster in C1 alone (19 s against
22 s): on two cores, C2 compiling Spark's hot paths takes the cores the job needs. A session that
lives for many minutes and does many jobs' work is the opposite case: C1's code stays slow, and the
integration tests' own session ran its tests twice as long with it (53 s -> 109 s for one), so such
a session asks for SPARK_JIT=full.

The archive is made once per install (`make setup` runs `python -m lib.medallion.jvm`) by a Spark
session that runs what jobs run (SQL, a window, an Iceberg MERGE on a throwaway local catalog,
Arrow to pandas), with no service needed. Class-data sharing is a cache: a JVM that cannot use the
archive (another JDK, other jars) starts without it, only slower. SPARK_JIT=full keeps C2.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from lib.config import Settings
from lib.errors import StackError

#: The archive's name beside the jars it was made with (a new `make jars` removes it with them).
ARCHIVE = "spark-driver.jsa"
#: The class-data sharing log off: what it would say (a class it skips, an archive it cannot map) is no
#: error, and a JVM's stdout lands in a notebook's cell.
QUIET = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")


def archive_path(cfg: Settings) -> Path:
    return cfg.jars_dir / ARCHIVE


#: The code cache tiered compilation reserves by default (C1 alone would get 48 MiB).
CODE_CACHE = "240m"


def driver_options(cfg: Settings) -> list[str]:
    """The driver's JVM options for start-up: the archive when there is one, the JIT tier asked for."""
    options = []
    archive = archive_path(cfg)
    if archive.is_file():
        # -Xshare:auto (the default): a JVM that cannot map the archive runs without it.
        options += [f"-XX:SharedArchiveFile={archive}", *QUIET]
    if cfg.spark_jit == "quick":
        # Without tiered compilation the code cache shrinks to 48 MiB by default, which a long session
        # fills (the JVM then stops compiling and interprets the rest): keep tiered's 240 MiB.
        options += ["-XX:TieredStopAtLevel=1", f"-XX:ReservedCodeCacheSize={CODE_CACHE}"]
    return options


#: What the archiving session runs: the statements' shapes every job has (DDL, MERGE, a window, a
#: join, a group by, Arrow to pandas), on an Iceberg catalog in a temporary folder.
_TRAINING = (
    "CREATE NAMESPACE IF NOT EXISTS training.db",
    "CREATE TABLE training.db.events (id STRING, n INT, at TIMESTAMP, day DATE) USING iceberg "
    "PARTITIONED BY (day) TBLPROPERTIES ('format-version' = '2', 'write.merge.mode' = 'merge-on-read')",
    "INSERT INTO training.db.events SELECT CAST(id AS STRING), CAST(id % 7 AS INT), "
    "TIMESTAMP '2026-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, 0, id), DATE '2026-01-01' FROM range(1000)",
    "MERGE INTO training.db.events t USING (SELECT CAST(id AS STRING) AS id, 1 AS n, current_timestamp() AS at, "
    "DATE '2026-01-02' AS day FROM range(500, 1500)) s ON t.id = s.id "
    "WHEN MATCHED THEN UPDATE SET t.n = s.n WHEN NOT MATCHED THEN INSERT *",
    "SELECT id, n, row_number() OVER (PARTITION BY n ORDER BY at) AS r FROM training.db.events",
    "SELECT e.n, count(*) AS c, max(e.at) FROM training.db.events e JOIN training.db.events f ON e.id = f.id "
    "GROUP BY e.n ORDER BY e.n",
    "SELECT * FROM training.db.events.snapshots",
)


def make_archive(cfg: Settings) -> Path:
    """Run the training session in a JVM that writes its loaded classes at exit; the archive appears
    (atomically renamed) only when that JVM has exited cleanly."""
    from lib.medallion.spark import _session, spark_conf  # spark.py asks this module for its options

    target = archive_path(cfg)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    conf = spark_conf(cfg)
    # The training JVM archives what it loads; it uses no archive of its own.
    java = [o for o in conf["spark.driver.extraJavaOptions"].split() if not o.startswith(("-XX:SharedArchiveFile",
                                                                                          "-Xlog:cds"))]
    with tempfile.TemporaryDirectory(prefix="spark-cds-") as warehouse:
        conf.update({
            "spark.driver.extraJavaOptions": " ".join([*java, f"-XX:ArchiveClassesAtExit={partial}", *QUIET]),
            "spark.master": "local[2]",
            "spark.sql.catalog.training": "org.apache.iceberg.spark.SparkCatalog",
            "spark.sql.catalog.training.type": "hadoop",
            "spark.sql.catalog.training.warehouse": Path(warehouse).as_uri(),
        })
        spark = _session(conf, "roman-workbook-cds")
        for statement in _TRAINING:
            spark.sql(statement).toPandas()
        # The archive is valid only for this class path: kept beside it, so a test can ask a JVM to map it.
        classpath = spark.sparkContext._jvm.System.getProperty("java.class.path")  # type: ignore[union-attr]
        gateway = spark.sparkContext._gateway
        assert gateway is not None
        spark.stop()
        # The JVM writes the archive as it exits, which it does when its stdin closes.
        proc = gateway.proc
        gateway.shutdown()
        proc.stdin.close()
        proc.wait(timeout=300)
    if not partial.is_file():
        raise StackError(f"the training JVM exited ({proc.returncode}) without writing {partial}")
    classpath_file(target).write_text(classpath)
    os.replace(partial, target)
    return target


def classpath_file(archive: Path) -> Path:
    return archive.with_name(f"{archive.name}.classpath")


def main() -> int:
    from lib.config import settings

    cfg = settings()
    began = time.monotonic()
    for stale in cfg.jars_dir.glob(f"{ARCHIVE}.*.partial"):
        stale.unlink(missing_ok=True)
    path = make_archive(cfg)
    size = path.stat().st_size / 2**20
    print(f"class-data archive for the Spark driver: {path.name}, {size:,.0f} MiB, in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
