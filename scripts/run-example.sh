#!/usr/bin/env bash
# Set up everything (idempotent), build every example's UDFs in all three
# guest languages (Rust, Go, Python; rebuilt only when their sources
# change), then run wasmbeam's main job: the wordcount example.
#   bash scripts/run-example.sh [INPUT] [OUTPUT_PREFIX]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
cargo build --release --locked -p wasmbeam-cli
for dir in examples/*/udf examples/*/udf-go examples/*/udf-py examples/*/*-udf examples/*/*-udf-go examples/*/*-udf-py; do
  [ -d "$dir" ] || continue
  echo "== wasmbeam build $dir"
  ./target/release/wasmbeam build "$dir" >/dev/null
done
input="${1:-examples/wordcount/input.txt}"
output="${2:-target/example-output/wordcount/counts}"
./target/release/wasmbeam run examples/wordcount/pipeline.yaml --set input="$input" --set output="$output"
echo "== first lines of the output =="
head -n 5 "$output"-00000-of-00001
