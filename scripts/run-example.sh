#!/usr/bin/env bash
# Set up everything (idempotent) and run wasmbeam's main job.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
cargo build --release --locked -p wasmbeam-cli
# Until the batch runner lands, the main job inspects a bundled Beam pipeline.
./target/release/wasmbeam inspect tests/fixtures/beam/a_wordcount.portable.pb
