# Tollgate's commands. `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install models protos demo serve test bench cluster clean

help:
	@echo "make demo    - build the models, start Redis/Triton/gateway, drive traffic, write demo-report.json"
	@echo "make serve   - keep the stack up on 127.0.0.1:50051 for your own client (Ctrl-C stops it)"
	@echo "make test    - unit and end-to-end tests through real Triton, Redis and gRPC"
	@echo "make models  - run the pipelines: real data -> train/encode -> evaluate -> quantize -> model_repo/"
	@echo "make protos  - regenerate gateway/api/ from protos/"
	@echo "make cluster - production topology on loopback: 2 gateways, 2 Triton pools, Redis, PostgreSQL, Prometheus (Ctrl-C stops it)"
	@echo "make bench   - performance suite (~10 min; BENCH_ARGS=--quick ~3 min): table + var/bench/latest.json"

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

# Side-by-side performance ratios on this machine (see README "Performance").
BENCH_ARGS ?=
bench: models
	$(PY) -m benchmarks run $(BENCH_ARGS)

# Several replicas on one machine (README "Running in production"); installs promtool and
# Prometheus on first use (deploy/tools/install-deploy-tools.sh). CLUSTER_ARGS: see --help.
CLUSTER_ARGS ?=
cluster: models
	$(PY) -m deploy.local.cluster $(CLUSTER_ARGS)

clean:
	rm -rf var demo-report.json model_repo/*/config.pbtxt model_repo/*/1/artifacts
