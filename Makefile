# Two commands for a newcomer: `make run` (server on the embedded default) and `make test` (the whole suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup run test lint unit integration services clean

$(STAMP): setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)
	@bash scripts/system-packages.sh

run: setup
	$(VENV)/bin/bpm serve --seed-demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The full suite: lint, then every tier. The PostgreSQL/RabbitMQ/browser tiers skip loudly when a service is
# missing on a developer machine; with CI=true (or BPM_REQUIRE_SERVICES=1) a missing service fails the run.
test: setup lint
	@bash scripts/services.sh
	$(VENV)/bin/pytest

services:
	@bash scripts/services.sh

clean:
	rm -rf $(VENV) var .pytest_cache
