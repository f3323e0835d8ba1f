"""`make lock`: every requirements*.txt re-resolved by uv with a sha256 hash for each pin.

pip installs the locks with --require-hashes, so a file on the index that changed since the lock
was made is refused, and so is any package the lock does not list. That second rule is why the
locks come from a universal resolution (`uv pip compile --universal`): one file then serves Linux
and macOS on x86_64 and arm64 alike, a platform's own dependency (appnope on macOS) kept under its
marker. A universal resolution also plans for Pythons and systems the workbook never runs on
(3.12+, Windows); `narrow` drops those entries, and the markers always true on CPython 3.11, so a
lock lists what some supported machine installs and nothing else.

Each lock keeps its pins where its source allows (uv prefers the versions already in the file):
requirements.txt is resolved from pyproject.toml's pins (with the test extra), the others from
themselves, so a version moves only when a pin is edited. Run by `make lock` in a virtualenv of
its own holding uv and packaging (requirements-tools.txt): `python -m lib.lockfile`.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

from lib.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Lock:
    """One lock file: where its pins come from and the oldest Python 3.11 it must install on."""

    path: str
    sources: tuple[str, ...]  # uv's input: requirement files, or pyproject.toml with extras
    python: str = "3.11"


LOCKS = (
    # soupsieve 4.1 (beautifulsoup4, so nbconvert) requires Python 3.11.5 or newer.
    Lock("requirements.txt", ("pyproject.toml", "--extra", "test"), python="3.11.5"),
    Lock("requirements-flink.txt", ("requirements-flink.txt",)),
    Lock("requirements-airflow.txt", ("requirements-airflow.txt",)),
    Lock("requirements-bootstrap.txt", ("requirements-bootstrap.txt",)),
    Lock("requirements-tools.txt", ("requirements-tools.txt",)),
)

# What the workbook runs on (README: Linux or macOS, Python 3.11), as marker environments.
PLATFORMS = (
    {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
    {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
)
LAST_PATCH = 30  # 3.11.x releases considered: from the lock's lowest up to this one


def environments(python: str) -> list[dict[str, str]]:
    """Every supported (platform, CPython 3.11.x) pair, from `python` up, as marker variables."""
    first = int(python.split(".")[2]) if python.count(".") == 2 else 0
    return [
        {**platform, "python_version": "3.11", "python_full_version": f"3.11.{patch}", "os_name": "posix",
         "implementation_name": "cpython", "platform_python_implementation": "CPython"}
        for platform, patch in itertools.product(PLATFORMS, range(first, LAST_PATCH + 1))
    ]


def narrow(compiled: str, python: str) -> str:
    """uv's universal, hashed output without the entries no supported machine installs.

    A marker true everywhere supported is dropped too (so the lock reads as plain pins); one true
    somewhere only is kept, and pip evaluates it at install time.
    """
    envs = environments(python)
    out: list[str] = []
    keep = True
    for line in compiled.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith((" ", "\t")):  # a --hash continuation of the entry above
            if keep:
                out.append(line)
            continue
        requirement, _, marker = line.removesuffix("\\").strip().partition(";")
        requirement, marker = requirement.strip(), marker.strip()
        verdicts = [Marker(marker).evaluate(env) for env in envs] if marker else [True]
        keep = any(verdicts)
        if keep:
            pin = requirement if all(verdicts) else f"{requirement} ; {marker}"
            out.append(f"{pin} \\" if line.rstrip().endswith("\\") else pin)
    return "\n".join(out) + "\n"


def header(path: Path) -> str:
    """The comment block a lock starts with: what it is for and how it is made, kept across runs."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    if not lines:
        raise ConfigError(f"{path.name} has no header comment: put back the lines saying what the lock is for and "
                          f"how it is made (`git show HEAD:{path.name}`), then rerun `make lock`.")
    return "\n".join(lines) + "\n"


def relock(lock: Lock, uv: str) -> None:
    """Re-resolve one lock with hashes, its current pins preferred; rewrites the file in place."""
    target = ROOT / lock.path
    with tempfile.TemporaryDirectory(prefix="roman-lock-") as tmp:
        preferred = Path(tmp) / target.name  # uv keeps the versions of the file it writes over
        shutil.copy(target, preferred)
        command = [uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-annotate",
                   "--no-header", "--python-version", lock.python, *lock.sources, "-o", str(preferred)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConfigError(f"uv could not resolve {lock.path}:\n{done.stderr.strip()}\n"
                              f"Fix the pin it names (in {lock.sources[0]}), then rerun `make lock`.")
        target.write_text(header(target) + narrow(preferred.read_text(), lock.python))


def main(argv: list[str] | None = None) -> int:
    """Relock the files named (default: all of them) and say which were rewritten."""
    parser = argparse.ArgumentParser(prog="python -m lib.lockfile", description=__doc__.splitlines()[0])
    names = [lock.path for lock in LOCKS]
    parser.add_argument("locks", nargs="*", metavar="LOCK", help=f"default: all of {', '.join(names)}")
    parser.add_argument("--uv", default=str(Path(sys.executable).parent / "uv"),
                        help="the uv executable (default: the one next to this Python)")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.locks) - set(names)):
        parser.error(f"not a lock: {', '.join(unknown)} (the locks: {', '.join(names)})")
    try:
        for lock in LOCKS:
            if not args.locks or lock.path in args.locks:
                relock(lock, args.uv)
                print(f"locked {lock.path}")
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
