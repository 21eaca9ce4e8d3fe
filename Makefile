# Sandpit: `make up` runs the service on this machine, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install

.PHONY: up deps venv lint format test test-fast bench clean

up: deps venv
	$(BIN)/sandpit up

deps:
	@bash deploy/local/install-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

lint: venv
	$(BIN)/ruff check service tests
	$(BIN)/ruff format --check service tests
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix service tests
	$(BIN)/ruff format service tests

test: deps venv lint
	$(BIN)/pytest tests

test-fast: venv
	$(BIN)/pytest tests -x -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
