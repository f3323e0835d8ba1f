"""The Spark driver's class-data archive that `make setup` makes is one this JDK maps (lib/medallion/jvm.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from lib.config import Settings
from lib.medallion.jvm import archive_path, classpath_file, driver_options


def java(cfg: Settings) -> str:
    if cfg.java_home:
        return str(Path(cfg.java_home) / "bin" / "java")
    found = shutil.which("java")
    assert found, "no java on PATH"
    return found


def test_the_archive_maps_sparks_classes_into_a_driver_on_its_class_path(cfg: Settings) -> None:
    archive = archive_path(cfg)
    assert archive.is_file(), f"{archive} is missing: `make setup` makes it (python -m lib.medallion.jvm)"
    # -Xshare:on makes an archive this JVM cannot map (another JDK, another class path) an error, where the
    # jobs' default (auto) would quietly run without it.
    result = subprocess.run(
        [java(cfg), "-Xshare:on", f"-XX:SharedArchiveFile={archive}", "-Xlog:class+load=info",
         "-cp", classpath_file(archive).read_text(), "org.apache.spark.deploy.SparkSubmit", "--version"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SPARK_HOME": ""})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    loaded = [line for line in result.stdout.splitlines() if "org.apache.spark.deploy.SparkSubmit " in line]
    assert loaded and "shared objects file (top)" in loaded[0], loaded


def test_a_quick_jit_driver_keeps_a_code_cache_a_long_session_does_not_fill(cfg: Settings) -> None:
    # C1 alone would reserve 48 MiB, which a benchmark's session filled ("CodeCache is full. Compiler has
    # been disabled"): the rest of its run was interpreted.
    options = [o for o in driver_options(replace(cfg, spark_jit="quick")) if not o.startswith("-XX:SharedArchive")]
    result = subprocess.run([java(cfg), *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    flags = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines() if line.count("=") == 1
             and len(line.split()) >= 4}
    assert flags["TieredStopAtLevel"] == "1"
    assert int(flags["ReservedCodeCacheSize"]) >= 240 * 2**20, flags["ReservedCodeCacheSize"]
