# EHR Bridge developer commands. Each target installs what it needs, once.
#   make run    Azurite + demo data + the dev host on http://127.0.0.1:7071 (ARGS=-v: audit
#               lines in the dev host's log, ARGS=-vv: the Azure SDK's HTTP detail too)
#   make test   lint, type checks and the whole test suite (Azurite included)
#   make lint   ruff (lint + format check), mypy (shared/, functions/, tools/) and
#               azure-functions-doctor
#   make bench  benchmark figures
#   make infra-check  parse the Bicep templates and run checkov on them (part of make test)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed
AZURITE := node_modules/.bin/azurite
PYTEST_ARGS ?=
INFRA_VENV := .venv-infra
INFRA_DEPS := $(INFRA_VENV)/.deps-installed

.PHONY: run test lint bench deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

local.settings.json: | $(DEPS)
	$(BIN)/python -m tools.bootstrap settings

deps: $(DEPS) $(AZURITE)

run: deps local.settings.json
	$(BIN)/python -m tools.run $(ARGS)

lint: $(DEPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tools.functions_doctor

test: deps lint infra-check
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: deps local.settings.json
	@command -v nginx >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		nginx >/dev/null 2>&1; } || echo "make bench: nginx not installed; its row is skipped"
	$(BIN)/python -m tools.bench

# checkov pins old dependencies: it gets its own virtualenv, which ignores itself in git.
$(INFRA_VENV)/bin/python:
	$(PYTHON) -m venv $(INFRA_VENV)
	echo '*' > $(INFRA_VENV)/.gitignore

$(INFRA_DEPS): infra/requirements-check.txt | $(INFRA_VENV)/bin/python
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r infra/requirements-check.txt
	touch $@

.PHONY: infra-check clean-infra

infra-check: $(INFRA_DEPS)
	$(INFRA_VENV)/bin/python tools/infra_check.py

clean-infra:
	rm -rf $(INFRA_VENV)

clean: clean-infra
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
