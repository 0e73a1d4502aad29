#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), then every workspace test,
# including end-to-end runs of the examples with WASM components built from
# source. The conformance tests' counts are printed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot run gains nothing from incremental state, which costs ~0.6 GB of
# disk; a developer's own setting wins.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
rm -rf target/conformance
cargo test --workspace --locked
# Beam's own portable-runner suite against `wasmbeam serve` (LOOPBACK).
bash scripts/beam-suite.sh >/dev/null
echo "== conformance counts =="
for f in descriptors urns coders triggers beam-suite; do
  if [ ! -s "target/conformance/$f.txt" ]; then
    echo "conformance summary $f is missing: its test did not run" >&2
    exit 1
  fi
  cat "target/conformance/$f.txt"
done
echo "all tests passed"
