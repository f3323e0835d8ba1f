# The workbook's commands. `make help` lists them; `make run` and `make test` are the two that matter.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
FLINK_VENV := .venv-flink
AIRFLOW_VENV := .venv-airflow
VPY := $(VENV)/bin/python
SITE := lib/python3.11/site-packages
# -C (strict checksums): a download whose checksum does not match the one the repository publishes fails
# the build, where Maven's default is to warn and cache it (jars/settings.xml says the same for Central).
MVN := mvn -q -B -C -s jars/settings.xml -f jars/pom.xml
# Every lock carries a sha256 hash per file: pip refuses a file that differs and any package not listed.
# Without build isolation, the few sdists in the locks (pyspark, PyFlink's libraries, ...) build with the
# virtualenv's own hashed setuptools, not with one fetched unpinned for the build.
PIP_INSTALL := -m pip install -q --disable-pip-version-check --require-hashes --no-build-isolation
BOOTSTRAP := requirements-bootstrap.txt
LOCK_VENV := /tmp/roman-lock
KERNEL := $(VENV)/share/jupyter/kernels/roman-workbook/kernel.json
JARS_STAMP := build/jars/.fetched
# The Spark driver's class-data archive (lib/medallion/jvm.py): made once, beside the jars it maps.
SPARK_CDS := build/jars/spark-driver.jsa
BOMBARDIER := build/bin/bombardier
BOMBARDIER_VERSION := v1.2.6
# The linters of the compose path, built from the Go module proxy like bombardier.
ACTIONLINT := build/bin/actionlint
ACTIONLINT_VERSION := v1.7.12
DOCKER_COMPOSE := build/bin/docker-compose
COMPOSE_VERSION := v5.6.0
WORKFLOWS := $(wildcard .github/workflows/*.yml)

# nbval runs each notebook on the workbook's own kernel (lib/jobs/kernel.py), the one papermill uses.
NBVAL := --nbval --nbval-kernel-name roman-workbook --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
	--nbval-cell-timeout 600

.PHONY: help setup run test test-unit test-integration test-notebooks test-cluster up down status airflow-up airflow-down lab bench lint lock jars airflow \
	env clean clean-stack

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-17s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(FLINK_VENV)/.installed $(AIRFLOW_VENV)/.installed $(JARS_STAMP) $(SPARK_CDS) $(KERNEL) ## Install what is missing: virtualenvs, jars, the Spark driver's class archive, Jupyter kernel

# Each virtualenv gets the pinned pip and setuptools first (Python 3.11 ships pip 23 and setuptools 65),
# then its lock.
$(VENV)/.installed: requirements.txt $(BOOTSTRAP)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: the workbook needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) $(PIP_INSTALL) -r $(BOOTSTRAP)
	$(VPY) $(PIP_INSTALL) -r requirements.txt
	echo "$(CURDIR)" > $(VENV)/$(SITE)/roman_workbook.pth
	touch $@

# Airflow 3.3.2 and its 129 dependencies, from the committed lock (its constraints files cannot be fetched).
airflow: $(AIRFLOW_VENV)/.installed ## Airflow in .venv-airflow, for the DAGs in dags/ (`python -m lib airflow ...`)

$(AIRFLOW_VENV)/.installed: requirements-airflow.txt $(BOOTSTRAP)
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python $(PIP_INSTALL) -r $(BOOTSTRAP)
	$(AIRFLOW_VENV)/bin/python $(PIP_INSTALL) -r requirements-airflow.txt
	echo "$(CURDIR)" > $(AIRFLOW_VENV)/$(SITE)/roman_workbook.pth
	touch $@

$(FLINK_VENV)/.installed: requirements-flink.txt $(BOOTSTRAP)
	test -x $(FLINK_VENV)/bin/python || $(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python $(PIP_INSTALL) -r $(BOOTSTRAP)
	$(FLINK_VENV)/bin/python $(PIP_INSTALL) -r requirements-flink.txt
	echo "$(CURDIR)" > $(FLINK_VENV)/$(SITE)/roman_workbook.pth
	touch $@

jars: $(JARS_STAMP) ## Fetch every JVM artifact named in jars/pom.xml with Maven

$(JARS_STAMP): jars/pom.xml jars/settings.xml $(wildcard jars/*/pom.xml) $(shell find jars -name '*.java')
	@command -v mvn >/dev/null || { echo "mvn not found: install Maven 3.8+ (Debian: apt-get install maven)"; exit 1; }
	rm -rf build/jars
	$(MVN) package dependency:copy-dependencies
	touch $@

# A Spark session that runs the jobs' kinds of statements on a throwaway catalog, with no service, writes the
# classes it loaded at exit (about 30 s, 180 MiB); every job's driver then maps them instead of loading them.
$(SPARK_CDS): $(VENV)/.installed $(JARS_STAMP) lib/medallion/jvm.py
	$(VPY) -m lib.medallion.jvm

$(KERNEL): $(VENV)/.installed lib/jobs/kernel.py
	$(VPY) -m lib kernel

run: setup ## Start the stack, execute the notebooks into runs/<UTC timestamp>/, print a summary, stop the stack
	$(VPY) -m lib workbook

test: setup lint $(BOMBARDIER) ## The tiers: unit; integration and nbval with each notebook's figures (one stack); the S3 and cluster modes
	$(VPY) -m pytest tests/unit
	$(VPY) -m pytest tests/integration notebooks $(NBVAL) --durations=15
	$(MAKE) --no-print-directory test-cluster

# The same ports as the default stack, so after it: a STACK_HOME of its own keeps the two apart.
CLUSTER_ENV := WAREHOUSE=s3 CLUSTER=1 STACK_HOME=$(CURDIR)/.stack-cluster

test-cluster: setup ## The medallion with the warehouse on S3 and Spark standalone; the stream on two taskmanagers
	$(CLUSTER_ENV) $(VPY) -m pytest tests/cluster --durations=5

test-unit: $(VENV)/.installed $(AIRFLOW_VENV)/.installed ## Unit tests: no service started, no port of the stack needed
	$(VPY) -m pytest tests/unit

test-integration: setup $(BOMBARDIER) ## Integration tests against the embedded stack (started and stopped by the session)
	$(VPY) -m pytest tests/integration

test-notebooks: setup ## nbval over the committed notebooks, each executed once, with its recorded figures checked
	$(VPY) -m pytest notebooks $(NBVAL)

up: setup ## Start the embedded stack (Kafka, Iceberg REST catalog, Flink)
	$(VPY) -m lib stack up

down: ## Stop the embedded stack
	@test -x $(VPY) && $(VPY) -m lib stack down || true

status: ## Show each service, its pid, address and health
	$(VPY) -m lib stack status

airflow-up: setup ## Airflow's api-server, dag-processor and scheduler beside the stack: UI on 127.0.0.1:8088
	$(VPY) -m lib airflow up

airflow-down: ## Stop Airflow's services (make down stops them too)
	@test -x $(VPY) && $(VPY) -m lib airflow down || true

# JupyterLab refuses to start as root unless told; in a container a learner often is root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: up ## The stack plus JupyterLab on 127.0.0.1:8888 (as any user, root included)
	cd notebooks && ../$(VENV)/bin/jupyter lab --ip 127.0.0.1 --no-browser $(LAB_ROOT)

bench: setup $(BOMBARDIER) ## Benchmarks: JSON results under bench/results/ and a printed table
	$(VPY) -m bench

# The service benchmark's load generator, built from the Go module proxy (no download site needed).
$(BOMBARDIER):
	@command -v go >/dev/null || { echo "go not found: the service benchmark builds bombardier with Go 1.21+"; exit 1; }
	GOBIN=$(CURDIR)/build/bin go install github.com/codesenberg/bombardier@$(BOMBARDIER_VERSION)

# Without shellcheck and pyflakes (-shellcheck= -pyflakes=): the same findings on every machine.
$(ACTIONLINT):
	@command -v go >/dev/null || { echo "go not found: make lint builds actionlint with Go 1.25+"; exit 1; }
	GOBIN=$(CURDIR)/build/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Compose's own CLI: `config` loads, interpolates and validates the file with no Docker engine. `go install`
# refuses the module (its go.mod has exclude directives), so it builds inside the module the proxy serves.
$(DOCKER_COMPOSE):
	@command -v go >/dev/null || { echo "go not found: make lint builds the docker compose CLI with Go 1.26.8+"; exit 1; }
	cd "$$(go mod download -json github.com/docker/compose/v5@$(COMPOSE_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')" \
	  && go build -trimpath -ldflags "-X github.com/docker/compose/v5/internal.Version=$(COMPOSE_VERSION)" \
	  -o $(CURDIR)/$(DOCKER_COMPOSE) ./cmd

lint: $(VENV)/.installed $(ACTIONLINT) $(DOCKER_COMPOSE) ## ruff; compose by its schema and its own CLI; the workflows by actionlint and their schema; lib/'s layers; mypy
	$(VENV)/bin/ruff check $(wildcard lib dags tests bench notebooks) conftest.py
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(DOCKER_COMPOSE) --env-file .env.example -f docker-compose.yml config -q
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(ACTIONLINT) -shellcheck= -pyflakes= $(WORKFLOWS)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# uv (pinned with hashes in requirements-tools.txt) in a throwaway virtualenv; lib/lockfile.py says how.
lock: ## Re-resolve every lock with sha256 hashes: requirements.txt from pyproject.toml's pins, the others from their own
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python $(PIP_INSTALL) -r $(BOOTSTRAP)
	$(LOCK_VENV)/bin/python $(PIP_INSTALL) -r requirements-tools.txt
	$(LOCK_VENV)/bin/python -m lib.lockfile
	@git diff --stat -- 'requirements*.txt'; echo "review the diff (git diff requirements*.txt), then commit it"

# The system Python on purpose: .env can be made before any virtualenv exists.
env: ## Write .env for docker compose with a random value for each secret (FORCE=1 replaces an existing one)
	$(PYTHON) -m lib.envfile write$(if $(filter 1,$(FORCE)), --force)

clean-stack: down ## Forget the stack's data (Kafka log, catalog, warehouse, checkpoints)
	@test -x $(VPY) && STACK_HOME=$(CURDIR)/.stack-cluster $(VPY) -m lib stack down >/dev/null || true
	rm -rf .stack .stack-cluster

clean: clean-stack ## Remove virtualenvs, jars and runs too
	rm -rf $(VENV) $(FLINK_VENV) $(AIRFLOW_VENV) build runs
