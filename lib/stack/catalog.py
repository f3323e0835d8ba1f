"""Iceberg's REST catalog server, SQLite-backed, from Maven Central jars (jars/catalog)."""

from __future__ import annotations

from pathlib import Path

from lib.config import S3_CHECKSUM_FLAGS, Settings
from lib.errors import HttpError
from lib.plumbing.http import get_json
from lib.stack.base import Service, jars


class CatalogServer(Service):
    """Iceberg's REST catalog server, backed by a SQLite file, with a local warehouse folder.

    Started through jars/catalog's LoopbackCatalogServer: the stock server's backend, bound to
    127.0.0.1 only and without SO_REUSEPORT (which would let a stale copy share the port).
    """

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.catalog_address
        super().__init__("iceberg-rest", addr.host, addr.port, "ICEBERG_REST_URI")

    def prepare(self, cfg: Settings) -> None:
        (cfg.stack_home / "catalog").mkdir(parents=True, exist_ok=True)
        if cfg.iceberg_warehouse.startswith("file:"):
            Path(cfg.iceberg_warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Settings) -> list[str]:
        return [
            cfg.java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:ReservedCodeCacheSize=32m", "-Xss512k", *S3_CHECKSUM_FLAGS,
            "-cp", jars(cfg, "catalog"), "workbook.catalog.LoopbackCatalogServer",
        ]

    def environment(self, cfg: Settings) -> dict[str, str]:
        # Every CATALOG_* variable becomes a catalog property (CATALOG_REST_PORT -> rest.port,
        # CATALOG_S3_PATH__STYLE__ACCESS -> s3.path-style-access).
        env = {
            "CATALOG_REST_HOST": self.host,
            "CATALOG_REST_PORT": str(self.port),
            "CATALOG_URI": f"jdbc:sqlite:{cfg.stack_home / 'catalog' / 'catalog.db'}",
            "CATALOG_WAREHOUSE": cfg.iceberg_warehouse,
        }
        env |= {"CATALOG_" + key.upper().replace("-", "__").replace(".", "_"): value
                for key, value in cfg.file_io_properties.items()}
        return env

    def healthy(self, cfg: Settings) -> bool:
        try:
            return "defaults" in get_json(f"{cfg.iceberg_rest_uri}/v1/config")
        except HttpError:
            return False
