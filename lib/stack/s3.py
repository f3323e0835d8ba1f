"""The S3 server of the stack's S3 mode (WAREHOUSE=s3): S3Proxy with its filesystem backend.

The same server as the compose file's, from Maven Central (jars/s3). Objects stay plain files
under STACK_HOME/s3/data/<bucket>/<key>, so a learner can look at the warehouse on disk, while
every client (the catalog server, Spark, Flink, PyIceberg) reads and writes it through the S3 API.
"""

from __future__ import annotations

from pyarrow import fs

from lib.config import Settings
from lib.errors import HttpError, StackError
from lib.plumbing.http import get_json
from lib.stack.base import Service


class S3Server(Service):
    """S3Proxy on S3_ENDPOINT, path-style, with the workbook's bucket created at start."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.s3_address
        super().__init__("s3", addr.host, addr.port, "S3_ENDPOINT")

    def prepare(self, cfg: Settings) -> None:
        home = cfg.stack_home / "s3"
        (home / "data").mkdir(parents=True, exist_ok=True)  # S3Proxy refuses to start without it
        (home / "s3proxy.conf").write_text("\n".join([
            f"s3proxy.endpoint=http://{self.host}:{self.port}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={cfg.s3_access_key_id}",
            f"s3proxy.credential={cfg.s3_secret_access_key}",
            "jclouds.provider=filesystem",
            f"jclouds.filesystem.basedir={home / 'data'}",
        ]) + "\n")

    def command(self, cfg: Settings) -> list[str]:
        found = sorted((cfg.jars_dir / "s3").glob("s3proxy-*-jar-with-dependencies.jar"))
        if not found:
            raise StackError(f"The S3 server's jar is missing from {cfg.jars_dir / 's3'}: run `make jars`.")
        return [cfg.java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dlogback.statusListenerClass=ch.qos.logback.core.status.NopStatusListener",
                "-jar", str(found[-1]), "--properties", str(cfg.stack_home / "s3" / "s3proxy.conf")]

    def environment(self, cfg: Settings) -> dict[str, str]:
        return {"LOG_LEVEL": "warn"}

    def healthy(self, cfg: Settings) -> bool:
        try:
            return get_json(f"{cfg.s3_endpoint}/healthz").get("status") == "OK"
        except HttpError:
            return False

    def after_start(self, cfg: Settings) -> None:
        """Create the bucket through the S3 API (a no-op when it exists)."""
        store = s3_filesystem(cfg)
        if store.get_file_info(cfg.s3_bucket).type == fs.FileType.NotFound:
            store.create_dir(cfg.s3_bucket)


def s3_filesystem(cfg: Settings) -> fs.S3FileSystem:
    """A client of the S3 server (pyarrow's): path-style, the stack's credentials and region."""
    return fs.S3FileSystem(
        access_key=cfg.s3_access_key_id, secret_key=cfg.s3_secret_access_key, region=cfg.s3_region,
        endpoint_override=cfg.s3_address.__str__(), scheme="http", allow_bucket_creation=True,
    )
