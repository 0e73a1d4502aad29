#!/usr/bin/env bash
# End-to-end wordcount benchmark on the 1,000,000-line corpus, in one run:
#   wasmbeam (Rust UDF) with 1 and 2 workers, a native single-threaded Rust
#   HashMap program, Beam Python 2.77's DirectRunner, and the same pipeline
#   with the Go and the Python UDF (2 workers). Prints wall time, peak RSS
#   and ratios; checks that all outputs hold the same counts.
#   bash benches/wordcount_e2e.sh [--skip-beam]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh >/dev/null
cargo build --release --locked -q -p wasmbeam-cli -p wasmbeam-bench
work="$root/target/bench-e2e"
mkdir -p "$work"
corpus="$work/corpus.txt"
want=213855ef11ef94bb2dcd5f14dc4892e65e9df5e4e66749f31a3d860f427a11e0
if [ ! -f "$corpus" ] || [ "$(sha256sum "$corpus" | cut -d' ' -f1)" != "$want" ]; then
  ./target/release/gen-corpus "$corpus" 1000000 42
fi
[ "$(sha256sum "$corpus" | cut -d' ' -f1)" = "$want" ] || { echo "corpus sha256 mismatch" >&2; exit 1; }

# Warm-up: build the UDFs and fill the compiled-component cache (not timed).
for p in pipeline pipeline-go pipeline-py; do
  ./target/release/wasmbeam run examples/wordcount/$p.yaml --set input=examples/wordcount/input.txt \
    --set output="$work/warm/$p/counts" >/dev/null 2>&1
done

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  read -r wall rss <"$work/$name.time"
  printf '%s %s %s\n' "$name" "$wall" "$rss" >>"$work/results"
}
: >"$work/results"
rm -rf "$work"/out-* "$work"/warm
measure wasmbeam_1w ./target/release/wasmbeam run examples/wordcount/pipeline.yaml --workers 1 \
  --set input="$corpus" --set output="$work/out-1w/counts"
measure wasmbeam_2w ./target/release/wasmbeam run examples/wordcount/pipeline.yaml --workers 2 \
  --set input="$corpus" --set output="$work/out-2w/counts"
measure wasmbeam_go_2w ./target/release/wasmbeam run examples/wordcount/pipeline-go.yaml --workers 2 \
  --set input="$corpus" --set output="$work/out-go/counts"
measure wasmbeam_py_2w ./target/release/wasmbeam run examples/wordcount/pipeline-py.yaml --workers 2 \
  --set input="$corpus" --set output="$work/out-py/counts"
measure native ./target/release/native-wordcount "$corpus" "$work/out-native.txt"
if [ "${1:-}" != "--skip-beam" ]; then
  measure beam_direct "$root/.venv/bin/python" tests/e2e/beam_wordcount.py "$corpus" "$work/out-beam/counts" \
    --shards=1 --runner=DirectRunner
fi

# Same counts everywhere.
ref=$(LC_ALL=C sort "$work/out-native.txt" | sha256sum)
for f in "$work"/out-1w/counts-* "$work"/out-2w/counts-* "$work"/out-go/counts-* "$work"/out-py/counts-* "$work"/out-beam/counts-*; do
  [ -f "$f" ] || continue
  [ "$(LC_ALL=C sort "$f" | sha256sum)" = "$ref" ] || { echo "output $f differs from the native reference" >&2; exit 1; }
done

python3 - "$work/results" <<'PY'
import sys
rows = {n: (float(w), int(r)) for n, w, r in (l.split() for l in open(sys.argv[1]))}
nat = rows["native"][0]
print("%-14s %9s %10s %10s" % ("run", "wall (s)", "RSS (MB)", "vs native"))
for n, (w, r) in rows.items():
    print("%-14s %9.2f %10.1f %9.2fx" % (n, w, r / 1024, w / nat))
w2 = rows["wasmbeam_2w"][0]
print("targets: 2 workers within 1.5x of native: %s (%.2fx)" % ("MET" if w2 <= 1.5 * nat else "MISSED", w2 / nat))
if "beam_direct" in rows:
    b = rows["beam_direct"][0]
    print("         at least 20x faster than Beam DirectRunner: %s (%.1fx)" % ("MET" if b / w2 >= 20 else "MISSED", b / w2))
print("         peak RSS <= 256 MB: %s (%.1f MB)" % ("MET" if rows["wasmbeam_2w"][1] <= 256 * 1024 else "MISSED", rows["wasmbeam_2w"][1] / 1024))
g = rows["wasmbeam_go_2w"][0]
print("         Go guest within 2x of the Rust guest: %s (%.2fx)" % ("MET" if g <= 2 * w2 else "MISSED", g / w2))
if "beam_direct" in rows:
    p = rows["wasmbeam_py_2w"][0]
    print("         Python guest at least 5x faster than DirectRunner: %s (%.1fx)" % ("MET" if b / p >= 5 else "MISSED", b / p))
print("all outputs hold identical counts")
PY
