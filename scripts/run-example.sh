#!/usr/bin/env bash
# Set up everything (idempotent), then run wasmbeam's main job: the wordcount
# example, with its Rust UDF built from source on the first run.
#   bash scripts/run-example.sh [INPUT] [OUTPUT_PREFIX]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
cargo build --release --locked -p wasmbeam-cli
input="${1:-examples/wordcount/input.txt}"
output="${2:-target/example-output/wordcount/counts}"
./target/release/wasmbeam run examples/wordcount/pipeline.yaml --set input="$input" --set output="$output"
echo "== first lines of the output =="
head -n 5 "$output"-00000-of-00001
