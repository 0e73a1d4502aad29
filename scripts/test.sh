#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), then every workspace test.
# The conformance tests print their counts (protos, urns, coders).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
echo "== conformance counts =="
cargo test --locked -p wasmbeam-proto --test conformance -- --nocapture 2>/dev/null | grep -E '^(protos|urns):'
cargo test --locked -p wasmbeam-coders --test standard_coders -- --nocapture 2>/dev/null | grep -E '^coders:'
echo "all tests passed"
