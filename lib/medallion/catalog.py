"""The Iceberg REST catalog from Python (PyIceberg): the same tables Spark and Flink write.

Reading through PyIceberg, with no Spark involved, is how notebooks and tests check what a job
committed: it proves the table is really in the catalog, not only in one Spark session's cache.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog, load_catalog

from lib.config import Settings


def catalog(cfg: Settings) -> Catalog:
    """The REST catalog `lake`, as configured by ICEBERG_REST_URI and ICEBERG_WAREHOUSE."""
    return load_catalog(cfg.catalog_name, type="rest", uri=cfg.iceberg_rest_uri, warehouse=cfg.iceberg_warehouse)
