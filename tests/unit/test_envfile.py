"""`make env` and the compose stack's secrets check (lib/envfile.py): random secrets, never the published ones."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lib import envfile
from lib.config import ROOT
from lib.errors import ConfigError

PUBLISHED = envfile.example_values()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the committed .env.example, so a test can write next to it."""
    return Path(shutil.copy(ROOT / ".env.example", tmp_path / ".env.example"))


def test_the_example_holds_every_secret_and_only_known_variables() -> None:
    assert set(envfile.SECRETS) <= set(PUBLISHED)
    assert set(PUBLISHED) == set(envfile.SECRETS) | envfile.SETTINGS | set(envfile.MACHINE)


def test_write_draws_every_secret_and_copies_the_settings(example: Path) -> None:
    env = example.parent / ".env"
    assert envfile.write(env, example)
    values = envfile.parse(env.read_text())
    assert set(values) == set(PUBLISHED)
    for name in envfile.SECRETS:
        assert values[name] != PUBLISHED[name], name
        assert len(values[name]) >= max(envfile.MIN_LENGTH.get(name, 0), 20), name
    for name in envfile.SETTINGS:
        assert values[name] == PUBLISHED[name], name
    assert values["AIRFLOW_UID"] == str(os.getuid())  # the containers write the checkout's files as its owner
    assert envfile.problems(values, example) == []
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_two_writes_never_share_a_secret(example: Path) -> None:
    first, second = example.parent / "a.env", example.parent / "b.env"
    envfile.write(first, example)
    envfile.write(second, example)
    a, b = envfile.parse(first.read_text()), envfile.parse(second.read_text())
    assert all(a[name] != b[name] for name in envfile.SECRETS)
    assert len({a[name] for name in envfile.SECRETS}) == len(envfile.SECRETS)


def test_an_existing_env_is_kept_unless_forced(example: Path) -> None:
    env = example.parent / ".env"
    envfile.write(env, example)
    mine = env.read_text() + "EVENT_SCHEMA_VERSION=2\n"
    env.write_text(mine)
    assert not envfile.write(env, example)
    assert env.read_text() == mine
    assert envfile.write(env, example, force=True)
    assert env.read_text() != mine and envfile.problems(envfile.parse(env.read_text()), example) == []


def test_an_existing_env_copied_from_the_example_is_refused_not_kept_silently(example: Path) -> None:
    env = example.parent / ".env"
    shutil.copy(example, env)
    with pytest.raises(ConfigError, match="FORCE=1") as err:
        envfile.write(env, example)
    assert all(name in str(err.value) for name in envfile.SECRETS)
    assert env.read_text() == example.read_text()


def test_the_check_names_each_variable_still_at_its_example_value(example: Path) -> None:
    values = {name: envfile.SECRETS[name]() for name in envfile.SECRETS}
    assert envfile.problems(values, example) == []
    left = ["JUPYTER_TOKEN", "AIRFLOW_JWT_SECRET"]
    values.update({name: PUBLISHED[name] for name in left})
    values["S3_SECRET_ACCESS_KEY"] = ""
    with pytest.raises(ConfigError) as err:
        envfile.require_changed(values, example)
    message = str(err.value)
    for name in left:
        assert f"{name} is still the value published in .env.example" in message
    assert "S3_SECRET_ACCESS_KEY is not set" in message
    assert "S3_ACCESS_KEY_ID" not in message and "AIRFLOW_DB_PASSWORD" not in message
    assert "make env" in message


def test_the_check_refuses_a_short_jwt_secret(example: Path) -> None:
    values = {name: envfile.SECRETS[name]() for name in envfile.SECRETS} | {"AIRFLOW_JWT_SECRET": "x" * 63}
    assert envfile.problems(values, example) == ["AIRFLOW_JWT_SECRET is shorter than 64 characters"]


def test_an_unknown_example_variable_is_refused(example: Path) -> None:
    example.write_text(example.read_text() + "NEW_PASSWORD=hunter2\n")
    with pytest.raises(ConfigError, match=r"NEW_PASSWORD.*SECRETS"):
        envfile.write(example.parent / ".env", example)


def test_the_module_runs_on_the_standard_library_alone(example: Path) -> None:
    """`make env` runs it with the system Python: -S -I keeps every site-packages out."""
    env = example.parent / ".env"
    run = [sys.executable, "-S", "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
           "from lib import envfile; sys.exit(envfile.main(sys.argv[2:]))", str(ROOT)]
    done = subprocess.run([*run, "write", "--env", str(env), "--example", str(example)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert subprocess.run([*run, "check", "--env-file", str(env), "--example", str(example)],
                          capture_output=True, check=False).returncode == 0
    refused = subprocess.run([*run, "check", "--env-file", str(example), "--example", str(example)],
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "AIRFLOW_DB_PASSWORD is still" in refused.stderr


def test_every_compose_service_holding_a_secret_waits_for_the_check() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    check = services["secrets-check"]
    assert check["command"][-3:] == ["-m", "lib.envfile", "check"] and check["restart"] == "no"
    assert set(check["environment"]) == set(envfile.SECRETS)
    for name, spec in services.items():
        text = yaml.safe_dump({k: spec.get(k) for k in ("environment", "command", "entrypoint")})
        if name != "secrets-check" and any(f"${{{secret}" in text for secret in envfile.SECRETS):
            assert spec["depends_on"]["secrets-check"] == {"condition": "service_completed_successfully"}, name
