#!/usr/bin/env bash
# Installs and starts what the stack and its tests need on a Debian host (as root).
# Idempotent: safe to run again; each service is started only if it is not running.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need_pkgs=(python3-venv python3-dev gcc)
missing=()
for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
