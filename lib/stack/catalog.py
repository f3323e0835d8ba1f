"""Iceberg's REST catalog server, SQLite-backed, from Maven Central jars (jars/catalog)."""

from __future__ import annotations

from pathlib import Path

from lib.config import Settings
from lib.stack.base import Service, http_json, jars

#: The AWS SDK (2.30+) sends and checks CRC checksums by default, which some S3-compatible servers
#: refuse; Iceberg 1.11 has no property for it, so every JVM that uses S3FileIO gets these flags.
S3_CHECKSUM_FLAGS = ("-Daws.requestChecksumCalculation=when_required", "-Daws.responseChecksumValidation=when_required")


def s3_properties(cfg: Settings) -> dict[str, str]:
    """Iceberg's S3FileIO properties for the stack's S3 server; every client sets them (the catalog
    server does not hand them out)."""
    return {
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "s3.endpoint": cfg.s3_endpoint,
        "s3.path-style-access": "true",
        "s3.access-key-id": cfg.s3_access_key_id,
        "s3.secret-access-key": cfg.s3_secret_access_key,
        "client.region": cfg.s3_region,
    }


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
        if cfg.warehouse == "s3":
            env |= {"CATALOG_" + key.upper().replace("-", "__").replace(".", "_"): value
                    for key, value in s3_properties(cfg).items()}
        return env

    def healthy(self, cfg: Settings) -> bool:
        try:
            return "defaults" in http_json(f"{cfg.iceberg_rest_uri}/v1/config")
        except (OSError, ValueError):
            return False
