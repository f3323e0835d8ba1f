"""docker-compose.yml against each image's own source: the facts a boot depends on, one test each.

No Docker engine runs here, so each fact the file relies on is written down with where it lives
upstream; a tag bump that changes the fact should be read against it, and a change to the file that
breaks it fails here. Each test failed on the file before its fix.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
import yaml

from lib.config import ROOT
from lib.stack.spark import WORKER_PORT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def _volume_target(service: str, volume: str) -> str:
    targets = [v.split(":", 1)[1] for v in SERVICES[service].get("volumes", []) if v.split(":", 1)[0] == volume]
    assert len(targets) == 1, (service, volume, SERVICES[service].get("volumes"))
    return targets[0]


def _stages(dockerfile: str) -> list[str]:
    """The image each stage of a Dockerfile starts FROM, in order (the last is the image's base)."""
    text = (ROOT / dockerfile).read_text()
    return re.findall(r"^FROM (\S+)", text, re.MULTILINE)


def _flink_properties(service: str) -> dict[str, str]:
    lines = _env(service)["FLINK_PROPERTIES"].splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


@pytest.mark.parametrize("service", ["flink-taskmanager"])
def test_a_taskmanager_registers_under_its_container_hostname_which_its_healthcheck_looks_for(service: str) -> None:
    """Flink 2.1 names a taskmanager `<rpc address>:<port>-<6 random hex>` unless `taskmanager.resource-id` is
    set, which it then uses as given (flink-runtime 2.1.3, TaskManagerRunner.getTaskManagerResourceID; the
    option in TaskManagerOptions, no default); flink-docker's entrypoint sets no `taskmanager.host`, so the
    address is the container's IP (`taskmanager.network.bind-policy` defaults to ip), and it runs `envsubst`
    on each FLINK_PROPERTIES value (2.1/scala_2.12-java17-ubuntu/docker-entrypoint.sh, process_flink_properties).
    So the id is the hostname only when FLINK_PROPERTIES says `taskmanager.resource-id: ${HOSTNAME}`
    (`$$` in compose: a literal `$`, expanded inside the container)."""
    assert _flink_properties(service).get("taskmanager.resource-id") == "$${HOSTNAME}"
    test = " ".join(SERVICES[service]["healthcheck"]["test"])
    assert "/taskmanagers" in test and re.search(r"grep -q (\$\$\(hostname\)|\$\$\{HOSTNAME\})", test), test


def test_the_catalog_keeps_its_database_where_the_fixture_user_can_write_and_on_its_volume() -> None:
    """apache/iceberg-rest-fixture 1.10.1 runs as `iceberg` (uid 1000), created with `--create-home`, and makes
    no data folder (apache/iceberg, docker/iceberg-rest-fixture/Dockerfile at apache-iceberg-1.10.1: useradd
    line and `USER iceberg:iceberg`). A new named volume takes the owner of the image's folder it is mounted
    on, and root's when the image has no such folder: the volume goes on /home/iceberg, and the SQLite file in it."""
    uri = _env("iceberg-rest")["CATALOG_URI"]
    assert uri.startswith("jdbc:sqlite:/"), uri
    database = uri.removeprefix("jdbc:sqlite:")
    home = _volume_target("iceberg-rest", "catalog-data")
    assert home == "/home/iceberg" and database.startswith(home + "/"), (home, database)


def test_kafka_writes_its_log_on_its_volume() -> None:
    """apache/kafka's image writes server.properties from the KAFKA_* variables alone once any is set (its default
    file, with log.dirs=/tmp/kraft-combined-logs, only when none is: KafkaDockerWrapper.prepareServerConfigs),
    so without KAFKA_LOG_DIRS the broker falls back to log.dir=/tmp/kafka-logs (ServerLogConfigs.LOG_DIR_DEFAULT)
    and the volume stays empty. /var/lib/kafka/data is the image's own VOLUME, owned by appuser
    (docker/jvm/Dockerfile)."""
    assert _env("kafka").get("KAFKA_LOG_DIRS") == _volume_target("kafka", "kafka-data") == "/var/lib/kafka/data"


def test_the_spark_worker_listens_on_the_port_the_embedded_stack_uses() -> None:
    """A standalone worker picks a random RPC port unless given `--port` or SPARK_WORKER_PORT (Spark 4.1
    spark-standalone.md, "Starting a Cluster Manually"); the workbook's status check and its error messages
    name lib.stack.spark.WORKER_PORT."""
    command = [str(c) for c in SERVICES["spark-worker"]["command"]]
    assert command[command.index("--port") + 1] == str(WORKER_PORT)


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def test_flink_in_compose_checkpoints_and_restarts_as_the_embedded_stack_does_with_its_state_in_the_bucket() -> None:
    """The stream's guarantees rest on its checkpoints (and stop-with-savepoint on a savepoint dir): the
    embedded config's checkpointing, state backend and restart strategy, key by key, with the directories
    in the bucket, the one place the jobmanager and every taskmanager reach (lib/stack/flink.py flink_config)."""
    from lib.config import settings
    from lib.stack.flink import flink_config

    embedded = _flat(flink_config(settings()))
    wanted = {k: v for k, v in embedded.items() if k.startswith(("execution.checkpointing.", "state.backend.",
                                                                  "restart-strategy."))}
    composed = _flink_properties("flink-jobmanager")
    assert composed == _flink_properties("flink-taskmanager")
    for key, value in wanted.items():
        assert key in composed, key
        if key.endswith("dir"):
            assert composed[key].startswith("s3://$${S3_BUCKET}/flink/"), (key, composed[key])
        else:
            assert composed[key] == value, (key, composed[key], value)


def test_flink_reads_the_bucket_through_the_s3_plugin_of_its_own_version_with_variables_it_has() -> None:
    """flink-docker's entrypoint links each jar ENABLE_BUILT_IN_PLUGINS names from opt/ into plugins/ and exits
    ("Plugin ... does not exist") when opt/ lacks it (docker-entrypoint.sh, copy_plugins_if_required); the
    distribution's opt/ holds flink-s3-fs-presto-<its version>.jar. Each `$${VAR}` in FLINK_PROPERTIES is
    expanded by envsubst inside the container, so the container must have VAR (HOSTNAME is Docker's own)."""
    base = next(line for line in (ROOT / "docker" / "flink" / "Dockerfile").read_text().splitlines()
                if line.startswith("FROM flink:"))
    version = base.split(":", 1)[1].split("-", 1)[0]
    for service in ("flink-jobmanager", "flink-taskmanager"):
        env = _env(service)
        assert env["ENABLE_BUILT_IN_PLUGINS"] == f"flink-s3-fs-presto-{version}.jar"
        used = set(re.findall(r"\$\$\{(\w+)\}", env["FLINK_PROPERTIES"]))
        assert used - {"HOSTNAME"} <= set(env), used - set(env)
        props = _flink_properties(service)
        assert props["s3.path.style.access"] == "true" and props["s3.endpoint"] == "$${S3_ENDPOINT}"


@pytest.mark.parametrize("service", ["jupyter", "airflow-scheduler"])
def test_a_container_that_runs_spark_drivers_advertises_its_own_name_to_the_executors(service: str) -> None:
    """Executors on the worker connect back to the driver at `spark.driver.host` (Spark 4.1 configuration.md;
    lib/medallion/spark.py sets it and the bind address from SPARK_DRIVER_HOST), 127.0.0.1 unless told: the
    kernel in jupyter, and each task of Airflow's LocalExecutor, which runs inside the scheduler's container."""
    assert _env(service).get("SPARK_DRIVER_HOST") == service


def test_the_executors_run_python_udfs_on_the_worker_images_own_interpreter() -> None:
    """The driver names the executors' Python (`spark.pyspark.python`); the driver in Airflow's image runs
    /opt/workbook/bin/python, which the worker's image lacks. The worker runs the workbook image, built FROM
    the official python image, whose interpreter is /usr/local/bin/python (docker-library/python)."""
    base = _stages(SERVICES["spark-worker"]["build"]["dockerfile"])[-1]
    assert base.startswith("python:3.11"), base
    for name, spec in SERVICES.items():
        if "SPARK_MASTER" in spec.get("environment", {}):
            assert _env(name)["SPARK_EXECUTOR_PYTHON"] == "/usr/local/bin/python", name


def test_airflow_tasks_find_the_workbook_kernel_in_the_environment_that_runs_them() -> None:
    """papermill starts the kernel named in the notebook (`roman-workbook`) through jupyter_client, which looks
    in `sys.prefix/share/jupyter/kernels` of the interpreter it runs in: the tasks run WORKBOOK_PYTHON, so
    the Airflow image must register the kernel with that interpreter, and what it copies must import alone."""
    text = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    python = re.search(r"WORKBOOK_PYTHON=(\S+)", text).group(1)
    assert f"{python} -c \"from lib.jobs.kernel import install" in text
    copied = re.findall(r"^COPY (lib/\S+(?: lib/\S+)*) ", text, re.MULTILINE)
    files = {f for line in copied for f in line.split()}
    assert {"lib/__init__.py", "lib/jobs/__init__.py", "lib/jobs/kernel.py"} <= files
    imports = re.findall(r"^(?:from|import) (\S+)", (ROOT / "lib" / "jobs" / "kernel.py").read_text(), re.MULTILINE)
    assert all(not name.startswith("lib") for name in imports), imports  # the standard library only


def test_the_container_that_runs_airflow_tasks_waits_for_the_execution_api() -> None:
    """In Airflow 3 a task talks to the api-server's execution API from its start (the task SDK's client at
    `[core] execution_api_server_url`); Airflow's own compose file makes the component that runs tasks (its
    Celery worker) wait for the api-server's health. Here the LocalExecutor runs them in the scheduler."""
    env = _env("airflow-scheduler")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    api = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname
    assert SERVICES["airflow-scheduler"]["depends_on"][api] == {"condition": "service_healthy"}


DOCKERFILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docker").glob("*/Dockerfile"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_each_image_fetches_its_jars_with_maven_in_a_stage_of_its_own(dockerfile: str) -> None:
    """The images built from a context with no jar in it (.dockerignore leaves build/ out), so no host `make jars`
    before `docker build`: a Maven stage runs the command `make jars` runs (strict checksums, Central only through
    jars/settings.xml) and the image copies its output from that stage."""
    text = (ROOT / dockerfile).read_text()
    make = re.search(r"^MVN := mvn (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    flags = make.replace("jars/", "/src/jars/")
    assert re.search(r"^FROM maven:\S+ AS jars$", text, re.MULTILINE), dockerfile
    assert f"RUN mvn {flags} -pl " in text and "package dependency:copy-dependencies" in text
    assert re.search(r"^COPY --from=jars /src/build/jars/", text, re.MULTILINE)
    assert "COPY build/" not in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "build/" in ignored and not any(line.startswith("!build") for line in ignored)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_base_image_is_pinned_to_a_patch_version(dockerfile: str) -> None:
    """A base named by a moving tag (python:3.11-slim, postgres:16) changes under the same Dockerfile; each names
    a release (three numbers) with its variant."""
    for base in _stages(dockerfile):
        tag = base.split(":", 1)[1]
        assert re.match(r"\d+\.\d+\.\d+", tag), base
    assert re.match(r"\d+\.\d+$", SERVICES["airflow-db"]["image"].split(":")[1]), "postgres: major.minor"


def test_the_containers_that_write_the_checkout_run_as_its_owner_after_an_init_that_chowns() -> None:
    """Airflow's own compose file runs its components as `${AIRFLOW_UID:-50000}:0` and its init, as root, creates
    and chowns what they write (docs: "Setting the right Airflow user"); files written into the bind-mounted
    checkout then belong to the host user, not to uid 50000 or root. `make env` writes AIRFLOW_UID (lib/envfile.py)."""
    writers = [name for name, spec in SERVICES.items() if ".:/workbook" in spec.get("volumes", [])]
    assert {"jupyter", "airflow-scheduler", "workbook-init"} <= set(writers)
    for name in writers:
        if name == "workbook-init":
            continue
        assert SERVICES[name]["user"] == "${AIRFLOW_UID:-50000}:0", name
        assert SERVICES[name]["depends_on"]["workbook-init"] == {"condition": "service_completed_successfully"}
    init = SERVICES["workbook-init"]
    assert init["user"] == "0:0" and init["restart"] == "no"
    script = init["command"][-1]
    state = COMPOSE["x-workbook-env"]["STACK_HOME"]
    for folder in (COMPOSE["x-workbook-env"]["RUNS_DIR"], state, "/airflow-logs"):
        assert folder in script.split("chown -R", 1)[1], folder
    # state in volumes, not in the checkout
    assert not state.startswith("/workbook") and _volume_target("jupyter", "workbook-state") == state
    assert _volume_target("airflow-scheduler", "workbook-state") == state


def test_airflow_task_logs_are_on_a_volume_every_component_shares() -> None:
    """The LocalExecutor's tasks write their logs in the scheduler's container; the api-server serves them.
    Airflow's own compose file mounts one logs folder into every component (AIRFLOW_HOME/logs)."""
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert _volume_target(name, "airflow-logs") == "/opt/airflow/logs", name


def test_every_one_shot_service_is_awaited_by_a_long_running_one_so_up_wait_can_succeed() -> None:
    """`docker compose up --wait` (the workflow's boot) fails on a container that exited, even with 0, unless a
    service still running depends on it with `service_completed_successfully` (docker/compose#10596;
    the condition-aware wait is docker/compose#9572)."""
    one_shot = {name for name, spec in SERVICES.items() if spec.get("restart") == "no"}
    awaited = {target for name, spec in SERVICES.items() if name not in one_shot
               for target, how in spec.get("depends_on", {}).items()
               if how.get("condition") == "service_completed_successfully"}
    assert one_shot and one_shot <= awaited, one_shot - awaited
