#!/usr/bin/env bash
# Logs benchmark: generated corpus into Sightline over Loki push, searched
# against rg -c on the raw text, disk against zstd -3.
# Usage: benches/logs_compare.sh   (LOG_MB=1024 HOSTS=800 HOURS=24 CONCURRENCY=4 REPEAT=5;
#        INGEST_ONLY=1 stops after the ingest figures)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v rg >/dev/null || need+=(ripgrep)
command -v zstd >/dev/null || need+=(zstd)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --bin sightline
cargo bench --bench logs_compare
