#!/usr/bin/env bash
# Builds Keybridge and the load generator in release, then measures everything and writes
# BENCHMARKS.md: Keybridge (memory and PostgreSQL, RS256 and ES256), the signing ceiling, and
# node-oidc-provider as the peer. Needs what ./scripts/test.sh installs (PostgreSQL, Node.js).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/upstreams/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --locked -p keybridge-server -p keybridge-bench
exec target/release/keybridge-bench --keybridge-bin target/release/keybridge --out BENCHMARKS.md "$@"
