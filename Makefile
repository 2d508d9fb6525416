# Two commands on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_CONSUMERS ?= 500
PYTEST_ARGS ?=

.PHONY: venv services run test lint format test-sqlite test-postgres bench flow-coverage clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@command -v espeak-ng >/dev/null 2>&1 || true
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

services:
	bash scripts/ensure_services.sh

run: venv services
	$(BIN)/contactcenter db upgrade
	$(BIN)/contactcenter demo seed --consumers $(DEMO_CONSUMERS) --seed 1 --if-empty
	$(BIN)/contactcenter demo users
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) bash scripts/run_dev.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-sqlite: venv
	TEST_DB=sqlite $(BIN)/pytest -n 2 $(PYTEST_ARGS)

test-postgres: venv
	bash scripts/ensure_services.sh --postgres --browser
	TEST_DB=postgresql $(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: venv
	bash scripts/ensure_services.sh --postgres --browser
	$(MAKE) lint
	$(MAKE) test-sqlite
	$(MAKE) test-postgres

# Flow coverage: which steps and branches the simulator-driven tests visit.
flow-coverage: venv services
	rm -rf var/flow-coverage && mkdir -p var/flow-coverage
	TEST_DB=sqlite $(BIN)/pytest -n 2 -p devtools.flow_coverage_plugin --flow-coverage=var/flow-coverage/ tests/ivr tests/telephony tests/devtools $(PYTEST_ARGS)
	$(BIN)/contactcenter simulate coverage --data var/flow-coverage/

bench: venv services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
