#!/usr/bin/env bash
# Outage scenario: Sightline (rule pack + built-in Alertmanager) against
# Prometheus + Alertmanager from Debian with the usual rules.
# Usage: benches/outage_compare.sh   (TARGETS=sightline,prometheus by default)
set -euo pipefail
cd "$(dirname "$0")/.."
benches/install_peers.sh
if ! command -v prometheus-alertmanager >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
fi
cargo build --release --bin sightline
cargo bench --bench outage_compare
