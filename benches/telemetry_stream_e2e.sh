#!/usr/bin/env bash
# Streaming telemetry throughput, in one run: examples/telemetry's streaming
# pipeline (watched directory, per-minute mean and max with early, on-time
# and late panes, silence alerts by processing-time timers) against the
# batch pipeline on the same readings (the reference, 1 and 2 workers).
# The stream's time runs from the file landing in the watched directory to
# the end of the job's drain (Ctrl-C 0.5 s later, after the watcher, which
# polls every 0.2 s, has read the file whole), so it includes firing every
# window's on-time pane and every alert. The script checks that the stream's
# final panes equal the batch output, so a file missed by the drain fails it.
#   bash benches/telemetry_stream_e2e.sh [READINGS]      (default 300000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${1:-300000}"
bash scripts/bootstrap.sh >/dev/null
cargo build --release --locked -q -p wasmbeam-cli
work="$root/target/bench-telemetry"
rm -rf "$work" && mkdir -p "$work/inbox"
# Readings of 1,000 meters, 1 ms apart, starting at the next minute.
python3 - "$n" "$work/readings.csv" <<'PY'
import sys, time, datetime
n, path = int(sys.argv[1]), sys.argv[2]
start = (int(time.time()) // 60 + 1) * 60 * 1000
with open(path, "w") as f:
    f.write("meter_id,timestamp,kwh\n")
    for i in range(n):
        t = datetime.datetime.fromtimestamp((start + i) / 1000, datetime.timezone.utc)
        f.write(f"m{i % 1000},{t:%Y-%m-%dT%H:%M:%SZ},{(i % 97) / 10}\n")
PY
bin=./target/release/wasmbeam
# Warm-up: build the UDF and fill the compiled-component cache (not timed).
$bin run examples/telemetry/pipeline.yaml --set input=examples/telemetry/readings.csv \
  --set output="$work/warm" >/dev/null 2>&1
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$(now)"; }
batch() { # workers
  local t0; t0=$(now)
  $bin run examples/telemetry/pipeline.yaml --workers "$1" --set input="$work/readings.csv" \
    --set output="$work/batch-$1" >"$work/batch-$1.log" 2>&1
  elapsed "$t0"
}
b1=$(batch 1)
b2=$(batch 2)
$bin run examples/telemetry/pipeline-stream.yaml --set input="$work/inbox/*.csv" \
  --set output="$work/stream" >"$work/stream.log" 2>&1 &
pid=$!
sleep 2 # the job starts and polls an empty directory
cp "$work/readings.csv" "$work/inbox/.landing"
t0=$(now)
mv "$work/inbox/.landing" "$work/inbox/readings.csv"
sleep 0.5
kill -INT "$pid"
wait "$pid"
s=$(elapsed "$t0")
# The stream's final panes hold what the batch run computed.
last_panes() { # the highest pane of each window's files, sorted lines
  ls "$1" | grep '^minute_stats' | sed 's/-pane\([0-9]*\)-.*//' | sort -u | while read -r w; do
    p=$(ls "$1" | grep "^$w-pane" | sed 's/.*-pane\([0-9]*\)-.*/\1/' | sort -n | tail -1)
    cat "$1/$w-pane$p-"*
  done | LC_ALL=C sort
}
if ! diff <(last_panes "$work/stream") <(cat "$work"/batch-2/minute_stats-* | LC_ALL=C sort) >/dev/null; then
  echo "the stream's final panes differ from the batch output" >&2; exit 1
fi
python3 - "$n" "$b1" "$b2" "$s" <<'PY'
import sys
n, b1, b2, s = int(sys.argv[1]), *map(float, sys.argv[2:])
print("| run | wall (s) | readings/s | time vs batch, 2 workers |")
print("|---|---|---|---|")
for name, t in [("batch, 1 worker", b1), ("batch, 2 workers", b2),
                ("stream, drop to drained (1 thread)", s)]:
    print(f"| {name} | {t:.2f} | {n / t:,.0f} | {t / b2:.2f}× |")
PY
