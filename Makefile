# Tollgate's commands. `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install models protos demo serve test clean

help:
	@echo "make demo    - build the models, start Redis/Triton/gateway, drive traffic, write demo-report.json"
	@echo "make serve   - keep the stack up on 127.0.0.1:50051 for your own client (Ctrl-C stops it)"
	@echo "make test    - unit and end-to-end tests through real Triton, Redis and gRPC"
	@echo "make models  - run the pipelines: real data -> train/encode -> evaluate -> quantize -> model_repo/"
	@echo "make protos  - regenerate gateway/api/ from protos/"

# The venv is rebuilt when pyproject.toml changes; torch is pinned there (CPU build).
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(INSTALLED)

models: install
	$(PY) -m pipeline build
	$(PY) -m pipeline.search build

protos: install
	$(PY) protos/generate.py

demo: models
	$(PY) -m deploy.local.demo

serve: models
	$(PY) -m deploy.local.serve

test: models
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var demo-report.json model_repo/*/config.pbtxt model_repo/*/1/artifacts
