# Tollgate's commands. `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install lock models protos demo serve test bench soak mutation cluster clean

help:
	@echo "make demo    - build the models, start Redis/Triton/gateway, drive traffic, write demo-report.json"
	@echo "make serve   - keep the stack up on 127.0.0.1:50051 for your own client (Ctrl-C stops it)"
	@echo "make test    - unit and end-to-end tests through real Triton, Redis and gRPC"
	@echo "make lock    - re-resolve requirements.lock (and the images' requirements) from pyproject.toml"
	@echo "make models  - run the pipelines: real data -> tune/train/encode -> evaluate -> quantize -> model_repo/"
	@echo "make protos  - regenerate gateway/api/ from protos/"
	@echo "make cluster - production topology on loopback: 2 gateways, 2 Triton pools, Redis, PostgreSQL, Prometheus (Ctrl-C stops it)"
	@echo "make mutation - mutation score of the core modules (mutmut), survivors listed"
	@echo "make soak    - 10 min at 80 % of capacity with Redis and a Triton bounced (SOAK_ARGS='--minutes 2')"
	@echo "make bench   - performance suite (~10 min; BENCH_ARGS=--quick ~3 min): table + var/bench/latest.json; a full run also writes benchmarks/RESULTS.md"

# Every install comes from requirements.lock: the whole dependency tree, exact versions and
# hashes, generated from pyproject.toml by `make lock`. `make install` syncs the venv to it with
# uv (the version the lock pins) and never resolves afresh, so every machine runs the same code
# on any day. torch's CPU build (2.13.0+cpu) is not on PyPI: it comes from the wheel folder or
# index in FIND_LINKS (on the project's machines, /opt/wheels; elsewhere, PyTorch's CPU index).
LOCK := requirements.lock
UV := $(VENV)/bin/uv
UV_VERSION = $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(LOCK))
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(wildcard /opt/wheels))
UV_FIND_LINKS := $(foreach f,$(FIND_LINKS),--find-links $(f))
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_35

$(INSTALLED): $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check --no-deps uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) --require-hashes $(UV_FIND_LINKS) $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

install: $(INSTALLED)

# Refresh the lock on purpose: after editing pyproject.toml's dependencies, or to take newer
# releases. Regenerates requirements.lock and the images' requirements from it in one go;
# tests/unit/test_lock.py fails until they agree. Commit all three files.
lock:
	test -x $(UV) || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet --no-deps uv==$(or $(UV_VERSION),0.13.9); }
	$(UV) pip compile --quiet pyproject.toml --all-extras --generate-hashes $(LOCK_TARGET) \
	    $(UV_FIND_LINKS) $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile --quiet pyproject.toml --generate-hashes $(LOCK_TARGET) -c $(LOCK) \
	    $(UV_FIND_LINKS) -o deploy/k8s/images/gateway/requirements.txt
	grep -E '^[A-Za-z0-9]' $(LOCK) | sed -e 's/ \\$$//' -e 's/+[a-z0-9.]*$$//' > $(VENV)/lock-public.txt
	$(UV) pip compile --quiet deploy/k8s/images/triton/requirements.in --generate-hashes \
	    $(LOCK_TARGET) -c $(VENV)/lock-public.txt \
	    -o deploy/k8s/images/triton/requirements.txt

# The recommender's COMPUTE_NS through Triton is measured once per build, after the offline pipeline.
models: install
	$(PY) -m pipeline build
	$(PY) -m deploy.local.recommender_compute

protos: install
	$(PY) protos/generate.py

demo: models
	$(PY) -m deploy.local.demo

serve: models
	$(PY) -m deploy.local.serve

test: models
	$(PY) -m pytest $(PYTEST_ARGS)

# Side-by-side performance ratios on this machine (see benchmarks/README.md); a full run also
# rewrites benchmarks/RESULTS.md and benchmarks/results/latest.json, to commit together.
BENCH_ARGS ?=
bench: models
	$(PY) -m benchmarks run $(BENCH_ARGS)

# Mutation testing of the core modules (tests/mutation_report.py): score per module, survivors
# listed. A few minutes; not part of CI.
mutation: models
	$(PY) tests/mutation_report.py --show-survivors

# The soak (benchmarks/soak.py): steady load at 80 % of capacity, Redis and one Triton bounced
# half-way; prints RSS growth, ledger completeness and file sizes. SOAK_ARGS='--minutes 2' for a short one.
SOAK_ARGS ?=
soak: models
	$(PY) -m benchmarks soak $(SOAK_ARGS)

# Several replicas on one machine (deploy/README.md); installs promtool and
# Prometheus on first use (deploy/tools/install-deploy-tools.sh). CLUSTER_ARGS: see --help.
CLUSTER_ARGS ?=
cluster: models
	$(PY) -m deploy.local.cluster_cli $(CLUSTER_ARGS)

clean:
	rm -rf var demo-report.json model_repo/*/config.pbtxt model_repo/*/1/artifacts
