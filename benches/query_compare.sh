#!/usr/bin/env bash
# Dashboard query benchmark against the real peers from Debian.
# Usage: benches/query_compare.sh   (INSTANCES=40 HOURS=24 REPEAT=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v victoria-metrics >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics prometheus >/dev/null
fi
cargo build --release --bin sightline
cargo bench --bench query_compare
