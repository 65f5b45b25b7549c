#!/usr/bin/env bash
# Remote-write ingest benchmark against the real peers from Debian.
# Usage: benches/ingest_compare.sh   (HOSTS=100 HOURS=2 CONCURRENCY=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
benches/install_peers.sh
cargo build --release --bin sightline
cargo bench --bench ingest_compare
