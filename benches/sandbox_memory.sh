#!/usr/bin/env bash
# Host memory under hostile UDF output (issue #10), end to end with the real
# wasmbeam binary and the `modes` test UDF:
#   1. one bundle whose UDF emits N empty values (the cheapest output per
#      element): peak RSS of `wasmbeam run`, and host bytes per element;
#   2. the same with N past the per-call output cap: refused, and the peak
#      RSS that costs;
#   3. a memory bomb on 8 workers under --memory-mb 256: peak RSS.
# usage: bash benches/sandbox_memory.sh [N]      (default N = 2000000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${1:-2000000}"
# Memory, not speed: the dev profile (dependencies optimised) is enough.
cargo build --locked -q -p wasmbeam-cli
bin="$root/target/debug/wasmbeam"
export WASMBEAM_GUEST_TARGET_DIR="$root/target/wasm-guests"
export WASMBEAM_CACHE_DIR="$root/target/wasm-cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
udf="$root/crates/wasmbeam-wasm-host/tests/udfs/modes"
"$bin" build "$udf" >/dev/null 2>&1

pipeline() { # MODE
  cat > "$work/p.yaml" <<YAML
pipeline:
  transforms:
    - {type: ReadFromText, name: Read, config: {path: $work/in.txt}}
    - {type: ParDo, name: Udf, input: Read, config: {udf: $udf, config: $1, output_coder: string_utf8}}
    - {type: WriteToText, name: Write, input: Udf, config: {path: $work/out/result, num_shards: 1}}
YAML
}

peak_kib() { # ARGS... -> prints "peak_kib exit_code"
  set +e
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" run "$work/p.yaml" "$@" >/dev/null 2>"$work/err"
  local code=$?
  set -e
  echo "$(tail -1 "$work/rss") $code"
}

echo "x" > "$work/in.txt"
pipeline identity
read -r base code <<<"$(peak_kib --workers 1)"
[ "$code" = 0 ] || { cat "$work/err"; exit 1; }
echo "baseline (identity, 1 element): peak RSS $((base / 1024)) MiB"

echo "$n" > "$work/in.txt"
pipeline flood
read -r peak code <<<"$(peak_kib --workers 1)"
echo "flood of $n empty values in one bundle: exit $code, peak RSS $((peak / 1024)) MiB," \
  "$(( (peak - base) * 1024 / n )) host bytes per element over the baseline" \
  "(the guest's own output is 8 bytes per element on the wire)"

big=$((n * 4))
echo "$big" > "$work/in.txt"
read -r peak code <<<"$(peak_kib --workers 1)"
echo "flood of $big empty values (past the 128 MiB output cap): exit $code, peak RSS $((peak / 1024)) MiB"
echo "  $(head -1 "$work/err" | cut -c1-160)..."

# 9 splits of 8 MiB, so that all 8 workers start a bomb at once.
{ yes a || true; } | head -c 72000000 > "$work/in.txt"
pipeline membomb
read -r peak code <<<"$(peak_kib --workers 8 --memory-mb 256)"
echo "memory bomb on 8 workers under --memory-mb 256: exit $code, peak RSS $((peak / 1024)) MiB"
echo "  $(head -1 "$work/err" | cut -c1-160)..."
