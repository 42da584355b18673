#!/usr/bin/env bash
# Refreshes deploy/k8s/base/price-book/price_book.toml from costing/price_book.toml, the one
# the gateway and the tests use. kustomize reads files only below the kustomization, so the
# price-book ConfigMap is generated from this copy; tests/e2e/test_deploy_manifests.py fails
# while the two differ. Run it after every price-book change, and commit both.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cp "$REPO/costing/price_book.toml" "$REPO/deploy/k8s/base/price-book/price_book.toml"
