# Set-up is part of every target: a fresh machine needs nothing but python3 (3.11) and make.
VENV   ?= .venv
CORES  ?= 8
ARGS   ?=
PORT   ?= 5055
PY     := $(VENV)/bin/python
# The real datasets for the integration and workflow tiers (a folder with uci_har/ and cifar10/).
export NVMXBAR_DATA_DIR ?= $(abspath data)
export MLFLOW_DISABLE_TELEMETRY = true
# Idle OpenMP threads sleep: jobs sharing the cores do not starve each other (docs/FINDINGS.md, Run time).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup services run test test-unit test-integration test-workflow test-cluster lint ui report

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(VENV)/.installed

## make run ARGS='--config profile=smoke data_dir=/path/to/data' : the workflow (snakemake --cores $(CORES))
run: setup
	$(VENV)/bin/snakemake --cores $(CORES) $(ARGS)

## make services : the Debian packages the cluster tier starts (SLURM + MUNGE, PostgreSQL) and ngspice (the IR-drop
## solver's check, tests/integration/test_ngspice.py); root, idempotent
services:
	tools/cluster/install_slurm.sh
	tools/cluster/install_postgres.sh
	tools/cluster/install_ngspice.sh

## make test : every tier (unit, integration, workflow, cluster); real data from $$NVMXBAR_DATA_DIR (default ./data).
## Two pytest workers, each running whole test files (module fixtures such as the smoke run stay in one process):
## the cluster tier spends much of its time waiting on services, so the two overlap on two cores.
test: setup services
	$(PY) -m pytest -n 2 --dist loadfile $(ARGS)

## make test-unit : the unit tier alone (seconds per test, no real data)
test-unit: setup
	$(PY) -m pytest tests/unit $(ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration $(ARGS)

test-workflow: setup
	$(PY) -m pytest tests/workflow $(ARGS)

test-cluster: setup services
	$(PY) -m pytest tests/cluster $(ARGS)

## make lint : ruff (rules and format), snakefmt, snakemake --lint, the import contract
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint --config data_dir=/nonexistent download=false
	$(VENV)/bin/lint-imports

## make ui : the MLflow UI on http://127.0.0.1:$(PORT) over results/mlflow.db; first prints each experiment's
## runs-table address (the UI itself lands on the GenAI overview)
ui: setup
	$(PY) tools/ui_urls.py --store sqlite:///$(abspath results/mlflow.db) --base http://127.0.0.1:$(PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(abspath results/mlflow.db) \
	  --default-artifact-root $(abspath results/mlartifacts) --host 127.0.0.1 --port $(PORT) --workers 1

## make report : Snakemake's HTML report of the last run (report.html)
report: setup
	$(VENV)/bin/snakemake --cores 1 --report report.html $(ARGS)
