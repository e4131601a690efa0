# Set-up is part of every target: a fresh machine needs nothing but python3 (3.11) and make.
VENV   ?= .venv
CORES  ?= 8
ARGS   ?=
PORT   ?= 5055
PY     := $(VENV)/bin/python

.PHONY: setup run test ui report clean-results

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(VENV)/.installed

## make run ARGS='--config profile=smoke data_dir=../shared/data' : the workflow (snakemake --cores $(CORES))
run: setup
	$(VENV)/bin/snakemake --cores $(CORES) $(ARGS)

## make test : the test suite (real data from $$NVMXBAR_DATA_DIR, default ../shared/data)
test: setup
	$(PY) -m pytest $(ARGS)

## make ui : the MLflow UI on http://127.0.0.1:$(PORT) over results/mlflow.db
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(abspath results/mlflow.db) \
	  --default-artifact-root $(abspath results/mlartifacts) --host 127.0.0.1 --port $(PORT) --workers 1

## make report : Snakemake's HTML report of the last run (report.html)
report: setup
	$(VENV)/bin/snakemake --cores 1 --report report.html $(ARGS)
