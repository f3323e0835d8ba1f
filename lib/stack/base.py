"""What every service of the embedded stack has: an address, a start command, a health check.

Each service is a subclass in its own module (kafka, catalog, flink, roman); the supervisor
(lib.stack.supervisor) starts, checks and stops them through this interface alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lib.config import Settings
from lib.errors import StackError
from lib.stack.process import ManagedProcess

MIN_JAVA = 17


def java_major(java: str) -> int:
    """The major version of a java executable, or a StackError saying how to install one."""
    exe = shutil.which(java) if os.sep not in java else (java if Path(java).exists() else None)
    if exe is None:
        raise StackError(
            f"Java was not found ({java!r} is not on PATH). The stack's services are JVMs and need "
            f"Java {MIN_JAVA} or newer: install it (Debian: `apt-get install openjdk-17-jdk-headless`) "
            "or set JAVA_HOME to a JDK folder."
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"Could not read the Java version from `{exe} -version`:\n{out}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


@dataclass
class Service:
    """One service of the stack: where it listens, how it starts, how we know it is healthy."""

    name: str
    host: str
    port: int
    env_var: str  # the setting that moves it, named in port errors ("" when nothing moves it)
    extra_ports: tuple[int, ...] = ()

    def process(self, cfg: Settings) -> ManagedProcess:
        return ManagedProcess(self.name, cfg.stack_home)

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.extra_ports)

    def prepare(self, cfg: Settings) -> None:
        """Write config files and initialise storage; runs before every start."""

    def command(self, cfg: Settings) -> list[str]:
        raise NotImplementedError

    def environment(self, cfg: Settings) -> dict[str, str]:
        return {}

    def healthy(self, cfg: Settings) -> bool:
        raise NotImplementedError

    def after_start(self, cfg: Settings) -> None:
        """Work that needs the running service (creating the events topic, say)."""

    def hint(self) -> str:
        return "See the full log for details, fix the cause and run `python -m lib stack up` again."


def jars(cfg: Settings, group: str) -> str:
    folder = cfg.jars_dir / group
    if not folder.is_dir() or not any(folder.glob("*.jar")):
        raise StackError(
            f"The {group} jars are missing from {folder}. They are fetched by Maven: run `make jars` "
            "(or `make up`, which does it for you), then try again."
        )
    return f"{folder}/*"
