#!/usr/bin/env bash
# What the collector agent costs a node (CPU, RSS) at 1,000 series every
# 15 s and 100 log lines/s. Usage: benches/agent_cost.sh   (SECONDS=120)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin sightline
cargo bench --bench agent_cost
