# Dodo Payments -> Customer.io bridge. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13; use it here too when this machine has it (pyenv or PATH), else python3.
PY313 := $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13 2>/dev/null)
PYTHON ?= $(if $(PY313),$(PY313),python3)
PY313_BIN := $(if $(PY313),$(dir $(PY313)),)

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
SAM_VENV := .venv-sam
export AWS_DEFAULT_REGION ?= us-east-1
# pytest workers for make test: one per core (pytest-xdist); PYTEST_WORKERS=0 runs in one process. Each test
# file runs whole on one worker, in its own order (--dist loadfile), as it does in one process.
PYTEST_WORKERS ?= auto

.PHONY: help install run load events test lint typecheck unit scan build bench size clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml layers/dodo_cio/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# checkov pins old boto3/packaging and would break the main venv, so it gets its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -U pip
	$(CHECKOV_VENV)/bin/pip install -q 'checkov==3.3.30'
	touch $@

# SAM CLI pins boto3/pydantic/click; kept apart from the runtime packages.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -U pip
	$(SAM_VENV)/bin/pip install -q 'aws-sam-cli==1.170.0'
	touch $@

install: $(STAMP) ## create .venv and install the project with its dev tools

run: $(STAMP) ## run the bridge locally (moto + local Customer.io sandbox unless real credentials are set)
	$(BIN)/python -m dodo_cio_local $(ARGS)

load: $(STAMP) ## load test: 2,000 signed webhooks, 20 senders, sandbox failing 20 %; fails on any loss or double (ARGS='--burst': renewal day)
	$(BIN)/python -m dodo_cio_testdata.loadtest $(ARGS)

events: $(STAMP) ## check events/dodo against Dodo's SDK models (filling in fields it adds), re-sign events/apigw
	$(BIN)/python -m dodo_cio_testdata.sample_bodies
	$(BIN)/python -m dodo_cio_testdata.make_events

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/dodo_cio/dodo_cio tools functions/ingest
	$(BIN)/mypy functions/retry  # separately: both handlers are modules named app

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: $(STAMP) $(CHECKOV_VENV)/.installed ## lint, type-check and run every test (template checks included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/dodo_cio/dodo_cio tools functions/ingest
	$(BIN)/mypy functions/retry  # separately: both handlers are modules named app
	CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

scan: $(CHECKOV_VENV)/.installed ## checkov on the template
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --skip-download --quiet

build: $(SAM_VENV)/.installed ## sam build for the real target (arm64, python3.13)
	SAM_CLI_TELEMETRY=0 PATH="$(PY313_BIN):$$PATH" $(SAM_VENV)/bin/sam build

size: $(STAMP) ## lines of product and of tests, per area, and their ratio
	$(BIN)/python -m dodo_cio_testdata.suite_size

bench: $(STAMP) ## benchmarks vs their floors (~1-2 min), writes bench/RESULTS.md; not run by make test
	$(BIN)/python bench/run.py

clean:
	rm -rf .aws-sam $(VENV) $(CHECKOV_VENV) $(SAM_VENV)
