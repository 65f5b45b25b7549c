#!/usr/bin/env bash
# Site loss: how fast the surviving sites answer, and with what.
# Usage: benches/site_failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin sightline
cargo bench --bench site_failover
