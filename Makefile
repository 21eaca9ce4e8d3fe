# Sandpit: `make up` runs the service on this machine, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install

.PHONY: up deps tool-libs venv lint format test test-fast bench bench-quick bench-languages bench-hold bench-profile loadtest soak clean \
	images compose-up compose-down test-docker

up: deps venv tool-libs
	$(BIN)/sandpit up

deps:
	@bash deploy/local/install-deps.sh

# Tools' pinned Python libraries, apart from Debian's (service/tools/install-libraries.sh; sudo if not root).
tool-libs: venv
	@SANDPIT_TOOL_PYTHON=$(BIN)/python bash service/tools/install-libraries.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

lint: venv
	$(BIN)/ruff check service tests loadtests examples
	$(BIN)/ruff format --check service tests loadtests examples
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix service tests loadtests examples
	$(BIN)/ruff format service tests loadtests examples

test: deps venv tool-libs lint
	$(BIN)/pytest tests --ignore=tests/docker

test-fast: venv
	$(BIN)/pytest tests --ignore=tests/docker -x -q

# Figures of the brief's table: one JSON line per scenario, saved under benchmarks/results/ with a plot.
bench: deps venv tool-libs
	$(BIN)/sandpit bench
	$(BIN)/python -m service.bench.refusal
	$(BIN)/python -m service.bench.forks
	$(BIN)/python -m service.bench.queue_capacity
	$(BIN)/python -m service.bench.page_costs

bench-quick: deps venv
	$(BIN)/sandpit bench --quick

# Hello world per language: p50 through the service next to the same toolchain run bare.
bench-languages: deps venv
	$(BIN)/python -m service.bench.languages

# 50,000 calls outstanding at one gateway: connections reset and calls lost (both must be 0), gateway
# RSS; bounded by --drain seconds.
bench-hold: deps venv
	$(BIN)/sandpit bench --scenario hold --drain 900

# Where the CPU of a trivial call goes: py-spy on the gateway and the worker at 32 in flight, 20 s.
bench-profile: deps venv
	$(BIN)/python -m service.bench.profile --concurrency 32 --duration 20

LOADTEST_STAMP := $(VENV)/.stamp-loadtest

$(LOADTEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench,loadtest]'
	@touch $@

# Locust users that behave like RL rollout workers, headless against a local stack, 60 s.
loadtest: deps venv $(LOADTEST_STAMP)
	$(BIN)/python -m loadtests.run --profile loadtest

# 30 minutes of steady load; RSS of every component sampled, must stay flat, no call lost.
soak: deps venv $(LOADTEST_STAMP)
	$(BIN)/python -m loadtests.run --profile soak

# Containers: images built without a registry (debootstrap base, host wheelhouse), the compose stack,
# and the test that runs real calls through it. See docs/deploy.md.
# `docker compose` v2 when installed, else docker-compose 1.29 through a shim for systempaths=unconfined.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo deploy/compose/compose-v1.py)
COMPOSE_ARGS := -p sandpit -f deploy/compose/compose.yaml
WORKERS ?= 2
export SANDPIT_SECCOMP_PROFILE ?= $(CURDIR)/deploy/seccomp/sandpit-worker.json

images:
	bash sandbox_images/build.sh

compose-up: images
	$(COMPOSE) $(COMPOSE_ARGS) up -d --no-build --scale worker=$(WORKERS)

compose-down:
	$(COMPOSE) $(COMPOSE_ARGS) --profile monitoring down

# Installs Docker from apt if absent and starts (then stops) its own dockerd when none is running.
test-docker: venv
	bash sandbox_images/install-docker.sh
	$(BIN)/pytest tests/docker

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
