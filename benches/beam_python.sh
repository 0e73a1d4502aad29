#!/usr/bin/env bash
# Pure Beam Python pipelines (no wasmbeam imports) on three runners, side by
# side in one run, on the 1,000,000-line corpus:
#   wasmbeam serve   (PortableRunner, LOOPBACK harness in the client)
#   Prism v2.77.0    (PortableRunner, LOOPBACK; built by scripts/prism.sh)
#   DirectRunner     (Beam Python's own)
# Pipelines: tests/e2e/beam_wordcount.py (ReadFromText -> FlatMap ->
# CombinePerKey(sum) -> WriteToText), and the same with --group-by-key
# (GroupByKey over every (word, 1) pair, no combiner, then a Map sums).
# Prints wall time and peak RSS (server and client separately), ratios, and
# the targets as MET or MISSED; checks that all outputs hold the same counts.
#   bash benches/beam_python.sh [LINES]     (default 1000000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
lines="${1:-1000000}"
bash scripts/bootstrap.sh >/dev/null
prism="$(bash scripts/prism.sh)"
cargo build --release --locked -q -p wasmbeam-cli -p wasmbeam-bench
py="$root/.venv/bin/python"
# Process harnesses (--experiments=use_loopback_process_worker) run `python`.
export PATH="$root/.venv/bin:$PATH"
work="$root/target/bench-beam-python"
rm -rf "$work"; mkdir -p "$work"
corpus="$root/target/bench-e2e/corpus-$lines.txt"
mkdir -p "$(dirname "$corpus")"
[ -f "$corpus" ] || ./target/release/gen-corpus "$corpus" "$lines" 42

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

: >"$work/results"
# run NAME SERVER_PID PIPELINE OUT OPTIONS...: times the client, records the
# server's peak RSS (0 without a server).
run() {
  local name=$1 server=$2 pipeline=$3 out=$4; shift 4
  local variant=()
  [ "$pipeline" = beam_group_sum ] && variant=(--group-by-key)
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$py" tests/e2e/beam_wordcount.py "$corpus" "$out" \
    "${variant[@]}" "$@" \
    >"$work/$name.log" 2>&1 || { tail -30 "$work/$name.log" >&2; exit 1; }
  grep -q "STATE DONE" "$work/$name.log" || { tail -30 "$work/$name.log" >&2; exit 1; }
  read -r wall client <"$work/$name.time"
  local srv=0
  [ "$server" = 0 ] || srv=$(peak_kb "$server")
  echo "$name $wall $client $srv" >>"$work/results"
}

# One fresh server per pipeline, so each peak RSS is that pipeline's.
for pipeline in beam_wordcount beam_group_sum; do
  port=$(free_port)
  ./target/release/wasmbeam serve --port "$port" --state-dir "$work/state-$pipeline" >"$work/serve-$pipeline.log" 2>&1 &
  wb=$!
  wait_port "$port"
  run "wasmbeam_$pipeline" "$wb" "$pipeline" "$work/out-wasmbeam-$pipeline/counts" --shards=1 \
    --runner=PortableRunner "--job_endpoint=127.0.0.1:$port" --environment_type=LOOPBACK
  kill "$wb"; wait "$wb" 2>/dev/null || true

  # Two SDK workers: LOOPBACK harnesses as processes (one is a thread of
  # the client otherwise, bound by its GIL), sharing the bundles; wasmbeam
  # splits the file's restriction between them.
  port=$(free_port)
  ./target/release/wasmbeam serve --port "$port" --state-dir "$work/state2-$pipeline" >"$work/serve2-$pipeline.log" 2>&1 &
  wb=$!
  wait_port "$port"
  run "wasmbeam_2w_$pipeline" "$wb" "$pipeline" "$work/out-wasmbeam2-$pipeline/counts" --shards=1 \
    --runner=PortableRunner "--job_endpoint=127.0.0.1:$port" --environment_type=LOOPBACK \
    --sdk_worker_parallelism=2 --experiments=use_loopback_process_worker
  kill "$wb"; wait "$wb" 2>/dev/null || true

  port=$(free_port)
  "$prism" --job_port="$port" --serve_http=false >"$work/prism-$pipeline.log" 2>&1 &
  pr=$!
  wait_port "$port"
  run "prism_$pipeline" "$pr" "$pipeline" "$work/out-prism-$pipeline/counts" --shards=1 \
    --runner=PortableRunner "--job_endpoint=127.0.0.1:$port" --environment_type=LOOPBACK
  kill "$pr"; wait "$pr" 2>/dev/null || true

  run "direct_$pipeline" 0 "$pipeline" "$work/out-direct-$pipeline/counts" --shards=1 --runner=DirectRunner
done

# Same counts everywhere.
ref=""
for f in "$work"/out-*/counts-*; do
  h=$(LC_ALL=C sort "$f" | sha256sum | cut -d' ' -f1)
  [ -z "$ref" ] && ref=$h
  [ "$h" = "$ref" ] || { echo "output $f differs" >&2; exit 1; }
done

"$py" - "$work/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    n, wall, client, server = line.split()
    rows[n] = (float(wall), int(client) / 1024, int(server) / 1024)
print("%-26s %9s %13s %13s" % ("run", "wall (s)", "client RSS MB", "server RSS MB"))
for n, (w, c, s) in rows.items():
    print("%-26s %9.2f %13.1f %13.1f" % (n, w, c, s))
for p in ("beam_wordcount", "beam_group_sum"):
    w, pr, d = rows["wasmbeam_" + p], rows["prism_" + p], rows["direct_" + p]
    print("%s: wasmbeam %.2fx faster than Prism, %.2fx faster than the DirectRunner; server RSS %.0f MB vs Prism's %.0f MB"
          % (p, pr[0] / w[0], d[0] / w[0], w[2], pr[2]))
for p in ("beam_wordcount", "beam_group_sum"):
    one, two = rows["wasmbeam_" + p], rows["wasmbeam_2w_" + p]
    print("%s: 2 SDK workers vs 1: %.2fx" % (p, one[0] / two[0]))
w = min(rows["wasmbeam_beam_wordcount"], rows["wasmbeam_2w_beam_wordcount"])
pr = rows["prism_beam_wordcount"]
print("target: wordcount at least 2x faster than Prism: %s (%.2fx)" % ("MET" if pr[0] / w[0] >= 2 else "MISSED", pr[0] / w[0]))
g = rows["wasmbeam_beam_group_sum"]
print("target: GroupByKey pipeline's server within 256 MB: %s (%.0f MB)" % ("MET" if g[2] <= 256 else "MISSED", g[2]))
print("all outputs hold identical counts")
PY
