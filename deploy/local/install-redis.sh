#!/usr/bin/env bash
# Installs Debian's redis-server when no redis-server binary is on PATH (used by deploy/local/redis.py).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
# Debian's package may start a system service; Tollgate starts its own instance when it needs one.
command -v redis-server
