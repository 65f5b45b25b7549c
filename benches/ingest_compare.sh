#!/usr/bin/env bash
# Remote-write ingest benchmark against the real peers from Debian.
# Usage: benches/ingest_compare.sh   (HOSTS=100 HOURS=2 CONCURRENCY=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v victoria-metrics >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics prometheus >/dev/null
fi
cargo build --release --bin sightline
cargo bench --bench ingest_compare
