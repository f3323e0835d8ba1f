"""A table's files as its storage holds them, next to the files its snapshots name.

A reader of an Iceberg table sees only the files a snapshot lists; the storage may hold more, such as
what a writer killed before its commit left behind. The listing goes through pyarrow's file systems:
the local folder in file mode, the bucket through the S3 API in S3 mode (S3FileIO's objects), so the
same code shows both. Files are compared by key: the path (file mode), or bucket and key (S3 mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from pyarrow import fs
from pyspark.sql import SparkSession

from lib.config import Settings
from lib.medallion.catalog import catalog
from lib.stack.s3 import s3_filesystem


@dataclass(frozen=True)
class StoredFile:
    """One object or file under a table's location."""

    key: str
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def key(uri: str) -> str:
    """A file's key from the URI Iceberg records ("s3://bucket/k" -> "bucket/k", "file:/p" -> "/p")."""
    parsed = urlparse(uri)
    return parsed.netloc + parsed.path if parsed.scheme.startswith("s3") else parsed.path


def filesystem(cfg: Settings, location: str) -> fs.FileSystem:
    """The file system that holds `location`: the bucket through the S3 API, or the local one."""
    return s3_filesystem(cfg) if urlparse(location).scheme.startswith("s3") else fs.LocalFileSystem()


def location(cfg: Settings, table: str) -> str:
    """The table's location as the catalog records it (a folder URI, or s3://bucket/prefix)."""
    return catalog(cfg).load_table(table).location().rstrip("/")


def data_files(cfg: Settings, location: str) -> dict[str, StoredFile]:
    """Every Parquet file under the data/ folder of the table at `location` as the storage lists it now, by key."""
    selector = fs.FileSelector(f"{key(location)}/data", recursive=True, allow_not_found=True)
    found = {}
    for info in filesystem(cfg, location).get_file_info(selector):
        if info.type == fs.FileType.File and info.path.endswith(".parquet"):
            modified = info.mtime.astimezone(UTC) if info.mtime else datetime.now(UTC)
            found[info.path] = StoredFile(info.path, info.size or 0, modified)
    return found


def referenced(spark: SparkSession, table: str) -> set[str]:
    """The keys of the data files that any snapshot still in the table's metadata lists (`all_files`)."""
    return {key(row.file_path) for row in spark.sql(f"SELECT file_path FROM {table}.all_files").collect()}
