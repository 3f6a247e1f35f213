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

.PHONY: setup run test lint format ui bench lock clean report

setup: $(STAMP) $(BIN)/fundtrace  ## install pinned, hashed dependencies into .venv (idempotent)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@touch $(STAMP)

# The `fundtrace` command. A launcher rather than an editable install: the build backend is not
# in the hashed lock, and this needs nothing beyond it.
$(BIN)/fundtrace: $(STAMP)
	@printf '#!/bin/sh\n# written by make setup: fundtrace = python -m pipelines.cli of this checkout\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec "%s" -m pipelines.cli "$$@"\n' "$(CURDIR)" "$(CURDIR)/$(BIN)/python" > $@
	@chmod +x $@

run: setup  ## materialize every asset from $$FUNDTRACE_RAW_DIR and publish $$FUNDTRACE_MARTS_DB
	$(BIN)/python -m pipelines.cli run

report: setup  ## render <marts dir>/report.html from $$FUNDTRACE_MARTS_DB (runs the pipeline first if it is missing)
	$(BIN)/python -m assets.marts.report

# Debian's chromium drives the Dagster UI browser test (tests/test_ui_browser.py); installed when
# missing and we are root with apt-get, otherwise that test is skipped with the reason
CHROMIUM := /usr/bin/chromium
.PHONY: browser
browser:  ## headless Chromium for the UI browser test (apt package `chromium`, as root)
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "could not install chromium: the browser test will be skipped"; \
	else echo "no $(CHROMIUM) (needs root and apt-get to install): the browser test will be skipped"; fi

# make test also runs the memory tests of 100-310 MB OCDS packages (~1 min; peak RSS must not
# grow with the file): FUNDTRACE_SLOW_TESTS=0 skips them, as a bare `pytest` does
FUNDTRACE_SLOW_TESTS ?= 1
# pytest-xdist: one worker per core (TEST_WORKERS=0 runs in one process); test files are kept
# whole on a worker (module fixtures such as a demo build are made once), in conftest's order
TEST_WORKERS ?= auto
test: setup browser  ## full pytest suite (with the large-package memory tests) + dagster definitions validate
	FUNDTRACE_SLOW_TESTS=$(FUNDTRACE_SLOW_TESTS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10
	$(BIN)/dagster definitions validate -w workspace.yaml

BENCH_SCALE ?= 0.01
bench: setup  ## benchmark at $$BENCH_SCALE (1 = 1M funding rows; BENCH_REPEAT=N runs N rounds of every build, medians kept, ratios paired per round): floor, full, no-change, one-file runs (the sensor's run, the whole job, new organisations, an OCDS file, misspelt names)
	$(BIN)/python -m bench.run --scale $(BENCH_SCALE)

.PHONY: bench-compare
bench-compare: setup  ## benchmark results over time, oldest first; BENCH_COMPARE="OLD NEW" (file names in bench/results) puts two side by side
	$(BIN)/python -m bench.compare $(BENCH_COMPARE)

.PHONY: docs
docs: setup  ## regenerate docs/marts.md from the mart TableSpecs (a test fails when it is stale)
	$(BIN)/python -m pipelines.docs

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
