"""The Iceberg REST catalog from Python (PyIceberg): the same tables Spark and Flink write.

Reading through PyIceberg, with no Spark involved, is how notebooks and tests check what a job
committed: it proves the table is really in the catalog, not only in one Spark session's cache.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.types import BinaryType, StringType

from lib.config import Settings


def catalog(cfg: Settings) -> Catalog:
    """The REST catalog `lake`, as configured by ICEBERG_REST_URI and ICEBERG_WAREHOUSE (and S3_* in S3 mode).

    PyIceberg reads S3 through pyarrow (path-style already) and wants `s3.region`: without one it
    asks AWS for the bucket's region, which costs seconds against a local server.
    """
    s3 = {"s3.region": cfg.s3_region} if cfg.warehouse == "s3" else {}
    return load_catalog(cfg.catalog_name, type="rest", uri=cfg.iceberg_rest_uri, warehouse=cfg.iceberg_warehouse,
                        **cfg.file_io_properties, **s3)


def keep_raw_payload(cfg: Settings, name: str) -> bool:
    """Migrate a dead letter table made before payloads were kept as bytes; True when it changed.

    The old `payload` STRING column held the raw bytes cast to text, which is unreadable once a
    record is not UTF-8. It becomes `payload_text` (the old rows keep what they had), and a new
    `payload` BINARY column takes the raw bytes from now on. A table that does not exist yet, or is
    already in the new shape, is left alone.
    """
    try:
        table = catalog(cfg).load_table(name)
    except NoSuchTableError:
        return False
    names = table.schema().column_names
    if "payload" not in names or not isinstance(table.schema().find_field("payload").field_type, StringType):
        return False
    with table.update_schema() as update:
        update.rename_column("payload", "payload_text")
    with table.update_schema() as update:
        update.add_column("payload", BinaryType(), doc="the raw Kafka value, byte for byte")
    return True
