#!/usr/bin/env bash
# Dashboard query benchmark against the real peers from Debian.
# Usage: benches/query_compare.sh   (INSTANCES=40 HOURS=24 REPEAT=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
benches/install_peers.sh
cargo build --release --bin sightline
cargo bench --bench query_compare
