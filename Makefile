# Fundtrace — two commands for a newcomer: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fundtrace-installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: setup run test lint format ui bench lock clean

setup: $(STAMP)  ## install pinned, hashed dependencies into .venv (idempotent)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@touch $(STAMP)

run: setup  ## materialize every asset from $$FUNDTRACE_RAW_DIR and publish $$FUNDTRACE_MARTS_DB
	$(BIN)/python -m pipelines.cli run

test: setup  ## full pytest suite + dagster definitions validate
	$(BIN)/python -m pytest
	$(BIN)/dagster definitions validate -w workspace.yaml

BENCH_SCALE ?= 0.01
bench: setup  ## benchmark at $$BENCH_SCALE (1 = 1M funding rows): floor, full, no-change, one-file runs
	$(BIN)/python -m bench.run --scale $(BENCH_SCALE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup  ## Dagster webserver + daemon (schedules fire) on 127.0.0.1:3000
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

lock:  ## re-resolve requirements.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
