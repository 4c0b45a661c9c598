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

# Web UI: front-end packages from npm copied into api/web/static/vendor/, and the compiled message catalogs.
# IBM_TELEMETRY_DISABLED: the chart library's @carbon packages would otherwise start a usage-telemetry process.
WEB_STAMP := api/web/static/vendor/.built
$(WEB_STAMP): api/web/package.json api/web/package-lock.json api/web/build-vendor.mjs
	cd api/web && IBM_TELEMETRY_DISABLED=true npm ci --no-audit --no-fund --loglevel=error && node build-vendor.mjs
	touch $(WEB_STAMP)

setup: $(STAMP) $(WEB_STAMP)
	@bash scripts/system-packages.sh
	@$(VENV)/bin/pybabel -q compile -d api/web/translations

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
