#!/usr/bin/env bash
# Installs the peers the benchmarks compare against (Debian packages), if missing.
set -euo pipefail
if ! command -v victoria-metrics >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics prometheus >/dev/null
fi
