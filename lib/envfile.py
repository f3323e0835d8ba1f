"""The .env docker compose reads: random secrets in place of .env.example's published ones.

.env.example is committed, so its values are known to anyone who has seen the repository; a stack
started on them has a public S3 key, Jupyter token, Airflow JWT secret and database password.
`write` (`make env`) makes a git-ignored .env with every secret drawn from the `secrets` module and
every other setting as in the example. `check` is what the compose stack's `secrets-check` service
runs before any service that holds a secret starts: it fails naming each variable still at its
example value. Standard library only, so `make env` runs it with the system Python before any
virtualenv exists: `python -m lib.envfile write|check`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from lib.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"
ENV = ROOT / ".env"

# Hex only: a value then needs no quoting in .env, in a shell command, in YAML or in the Postgres URL
# Airflow builds from the password. 4 bits a character, so 32 characters are 128 bits.
SECRETS: dict[str, Callable[[], str]] = {
    "S3_ACCESS_KEY_ID": lambda: secrets.token_hex(10),
    "S3_SECRET_ACCESS_KEY": lambda: secrets.token_hex(20),
    "JUPYTER_TOKEN": lambda: secrets.token_hex(24),
    "AIRFLOW_DB_PASSWORD": lambda: secrets.token_hex(16),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_hex(48),  # Airflow wants 64 characters or more
}
MIN_LENGTH = {"AIRFLOW_JWT_SECRET": 64}
# Copied from the example as they are: settings, not secrets.
SETTINGS = frozenset({"S3_BUCKET", "EVENT_SCHEMA_VERSION"})
# Facts of the machine that writes .env: the uid the Airflow and JupyterLab containers run as (with group 0,
# as Airflow's own compose file does), so what they write into the checkout belongs to whoever cloned it.
MACHINE: dict[str, Callable[[], str]] = {"AIRFLOW_UID": lambda: str(os.getuid())}
DRAWN = {**SECRETS, **MACHINE}  # what `write` does not copy from the example

FIX = "run `make env` (`make env FORCE=1` replaces an existing .env), then start the stack again"


def parse(text: str) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (comments and blank lines skipped, one pair of quotes removed)."""
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"line {number} ({line!r}) is not KEY=VALUE: fix or delete it, or {FIX}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read(path: Path, fix: str) -> str:
    """A file's text, or a ConfigError naming the file and `fix` when it cannot be read."""
    try:
        return path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {path} ({err.strerror}): {fix}") from err


def example_values(example: Path = EXAMPLE) -> dict[str, str]:
    """The example's values; every variable in it must be a known secret or setting, so none is copied by mistake."""
    values = parse(read(example, f"restore it (`git checkout -- {example.name}`)"))
    unknown = sorted(set(values) - set(SECRETS) - SETTINGS - set(MACHINE))
    if unknown:
        raise ConfigError(f"{example.name} sets {', '.join(unknown)}, which lib/envfile.py does not know: add each "
                          "to SECRETS (random in .env), MACHINE (read from this machine) or SETTINGS (copied as "
                          "it is) there.")
    return values


def render(example_text: str, draw: Mapping[str, Callable[[], str]] = DRAWN) -> str:
    """The example's lines with each secret drawn anew and each machine fact read; its opening comment replaced by
    one saying so."""
    lines = example_text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# Written by `make env` (lib/envfile.py) on {stamp}: random secrets, kept out of git (.gitignore).",
           "# Settings other than secrets are as in .env.example; edit them here freely."]
    for line in lines:
        key, sep, _ = line.partition("=")
        out.append(f"{key}={draw[key]()}" if sep and key in draw and not line.startswith("#") else line)
    return "\n".join(out) + "\n"


def write(env: Path = ENV, example: Path = EXAMPLE, force: bool = False) -> bool:
    """Write `env` with random secrets (owner-only permissions); an existing one is kept unless `force`.

    Returns whether it wrote. A kept file is checked, so a .env copied from the example is not kept silently.
    """
    example_values(example)  # refuses an example variable that is neither a secret nor a setting
    if env.exists() and not force:
        require_changed(parse(read(env, FIX)), example, source=f"{env} exists and was kept",
                        fix="`make env FORCE=1` replaces it with random secrets")
        return False
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    with os.fdopen(os.open(env, flags, 0o600), "w") as out:
        out.write(render(read(example, "restore it (`git checkout -- .env.example`)")))
    env.chmod(0o600)  # an existing file keeps its mode through O_TRUNC
    return True


def problems(values: Mapping[str, str], example: Path = EXAMPLE) -> list[str]:
    """One line per secret that is missing, empty, too short or still at its .env.example value."""
    published = example_values(example)
    found = []
    for name in SECRETS:
        value = values.get(name, "")
        if not value:
            found.append(f"{name} is not set")
        elif value == published.get(name):
            found.append(f"{name} is still the value published in .env.example")
        elif len(value) < MIN_LENGTH.get(name, 0):
            found.append(f"{name} is shorter than {MIN_LENGTH[name]} characters")
    return found


def require_changed(values: Mapping[str, str], example: Path = EXAMPLE, source: str = "the environment",
                    fix: str = FIX) -> None:
    """Raise a ConfigError naming every secret in `values` that is unusable (see `problems`) and the fix."""
    found = problems(values, example)
    if found:
        listing = "".join(f"\n  - {line}" for line in found)
        raise ConfigError(f"{source}: {len(found)} secret(s) not safe to run with:{listing}\nFix: {fix}.")


def main(argv: list[str] | None = None) -> int:
    """`write` makes .env, `check` vets the environment (or --env-file); 1 and the reason on stderr on failure."""
    parser = argparse.ArgumentParser(prog="python -m lib.envfile", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write_cmd = sub.add_parser("write", help="write .env with random secrets (kept when it exists)")
    write_cmd.add_argument("--force", action="store_true", help="replace an existing .env")
    write_cmd.add_argument("--env", type=Path, default=ENV, help="the file to write (default: .env)")
    check_cmd = sub.add_parser("check", help="fail naming each secret still at its example value")
    check_cmd.add_argument("--env-file", type=Path, help="check this file instead of the process environment")
    for cmd in (write_cmd, check_cmd):
        cmd.add_argument("--example", type=Path, default=EXAMPLE, help="the published example (default: .env.example)")
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            if write(args.env, args.example, force=args.force):
                print(f"wrote {args.env} with random {', '.join(SECRETS)}")
                if args.force:
                    print("note: a compose stack keeps the Airflow database password it was created with; "
                          "`docker compose down -v` removes its volumes so the new one takes effect")
            else:
                print(f"kept {args.env}: it exists and has no example secrets (`make env FORCE=1` replaces it)")
        elif args.env_file:
            require_changed(parse(read(args.env_file, FIX)), args.example, source=f"{args.env_file}")
            print(f"{args.env_file}: every secret is its own")
        else:
            require_changed(os.environ, args.example, source="the stack will not start on this .env")
            print("secrets-check: every secret is its own, none is .env.example's")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
