# casebook: `make notebooks` runs every case study; `make test` runs the test suite.
# Both create the virtual environment on first use. The Dockerfile runs these same targets.
PYTHON   ?= python3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.casebook-installed
# JupyterLab reads overrides.json from its application settings folder, <venv>/share/jupyter/lab/settings
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
LAB_IP   ?= 127.0.0.1
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_DIR  ?= $(or $(CASEBOOK_MLFLOW),$(CURDIR))
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
COLAB_VENV ?= /tmp/casebook-colab-venv
COLAB_NOTEBOOK ?= notebooks/03_synthetic_classification.ipynb
TORCH_INDEX ?=
TORCH_PINS := $(shell grep -E '^torch(vision)?==' requirements.txt)

.PHONY: help venv lab-settings test test-quick lint format notebooks results changelog verify lab mlflow-ui cluster data-check colab-check docker-check clean

help:
	@echo "make lab         read and run the notebooks in JupyterLab on $(LAB_IP):8888 (token on)"
	@echo "make notebooks   re-execute every notebook in full mode, OVERWRITING the committed outputs, figures,"
	@echo "                 results and README table (about an hour on 2 cores)"
	@echo "make test        run the test suite (unit tests + every notebook in smoke mode): what CI runs"
	@echo "make test-quick  the edit loop: no notebook, server, database, cluster or end-to-end training"
	@echo "make lint        ruff: lint and format check (code, tests, notebooks); make format applies both"
	@echo "make mlflow-ui   MLflow UI on $(MLFLOW_HOST):5000 (sqlite store in $(MLFLOW_DIR))"
	@echo "make cluster     a Ray head and one worker on 127.0.0.1 (prints the address; Ctrl-C stops them)"
	@echo "make results     rebuild the README results table from assets/results/*.json"
	@echo "make changelog   rebuild CHANGELOG.md (published numbers per case) from the results files' git history"
	@echo "make verify NB=05  re-execute notebook(s) on a scratch copy and compare with the committed numbers"
	@echo "make data-check  verify every dataset in the data root (CASEBOOK_DATA)"
	@echo "make docker-check opt-in: build the image and run every compose service against a Docker daemon"
	@echo "make colab-check opt-in: Colab's install path (pyproject dependencies only) in a scratch venv,"
	@echo "                 then notebook $(COLAB_NOTEBOOK) in smoke mode"

venv: $(STAMP) $(LAB_SETTINGS)

# The one install recipe (the Dockerfile calls `make venv`). triton is removed because TensorFlow and
# triton in one process segfault, and nothing here needs triton on a CPU.
# TORCH_INDEX (optional): a package index to take torch and torchvision from first, e.g. PyTorch's CPU-only
# wheels (https://download.pytorch.org/whl/cpu); PyPI's x86-64 Linux builds carry CUDA.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) $(TORCH_PINS))
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip uninstall --quiet -y triton
	touch $(STAMP)

# JupyterLab saves widget state in notebooks (jupyterlab/overrides.json): a progress bar from a run in the lab
# reopens as a bar, not as "Error displaying widget: model not found"
lab-settings: $(LAB_SETTINGS)

$(LAB_SETTINGS): jupyterlab/overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

# Two passes: the Ray cluster tests run alone, after the rest. Ray gives a starting node a fixed 30 s to
# register (ray/_private/node.py), which a node can miss on a machine busy executing notebooks on every core.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not cluster"; rest=$$?; \
	$(BIN)/python -m pytest -m cluster -n 0; cluster=$$?; \
	[ $$rest = 0 ] && [ $$cluster = 0 ]

# The edit loop: every test that starts no notebook kernel, server, database or cluster and trains no real model
# end to end (marked slow): about a minute. `make test` runs them all.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not notebook and not server and not cluster and not slow"

# ruff's settings are in pyproject.toml (notebooks/ruff.toml: 100 columns for GitHub's notebook view)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

notebooks: $(STAMP)
	$(BIN)/python -m casebook.notebooks
	$(BIN)/python -m casebook.report

results: $(STAMP)
	$(BIN)/python -m casebook.report

changelog: $(STAMP)
	$(BIN)/python scripts/changelog.py

# NB: notebook numbers or names (default: all); exit 1 when a number moved beyond its declared tolerance.
# Another machine, simulated: THREADS=1 (thread count) or CPU=default (torch's unvectorised kernels).
verify: $(STAMP)
	$(BIN)/python -m casebook.verify $(NB) $(if $(THREADS),--threads $(THREADS)) $(if $(CPU),--cpu $(CPU))

# A Ray head and one worker on 127.0.0.1, token authentication on, until Ctrl-C. As root it runs them in a
# network namespace with only loopback (Ray otherwise binds to the external interface too) and prints how to
# run clients there. On real hosts: README, "Scaling out".
cluster: $(STAMP)
	$(BIN)/python -m casebook.cli.local_cluster --workers 1

data-check: $(STAMP)
	$(BIN)/python -m casebook.data

lab: $(STAMP) $(LAB_SETTINGS)
	$(BIN)/jupyter lab --ip=$(LAB_IP) --port=8888 --no-browser $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR)

mlflow-ui: $(STAMP)
	@echo "runs of the case studies: http://$(MLFLOW_HOST):5000/#/experiments (each opens on its runs)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MLFLOW_DIR)/mlflow.db \
	  --default-artifact-root file://$(MLFLOW_DIR)/mlartifacts --host $(MLFLOW_HOST) --port 5000

# The install path Colab and Kaggle take: the package with only its pyproject dependencies and the `colab`
# extra (no requirements.txt pins), in a scratch venv; then one notebook in smoke mode with it.
colab-check:
	rm -rf $(COLAB_VENV)
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet -e ".[colab]"
	CASEBOOK_OUTPUTS=$(COLAB_VENV)/outputs CASEBOOK_MLFLOW=$(COLAB_VENV)/mlflow $(COLAB_VENV)/bin/python \
	  -m casebook.notebooks --smoke --out $(COLAB_VENV)/executed $(COLAB_NOTEBOOK)

# Opt-in (not part of `make test`): needs a Docker daemon. Builds the image, runs lab, training, prediction, db
# and mlflow as docker-compose.yml defines them (on the host network, loopback only), checks each, and removes
# everything it made.
docker-check: $(STAMP)
	$(BIN)/python scripts/docker_check.py

clean:
	rm -rf .pytest_cache build src/*.egg-info
