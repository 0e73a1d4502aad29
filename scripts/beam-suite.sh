#!/usr/bin/env bash
# Beam's own portable-runner suite (apache-beam 2.77.0's PortableRunnerTest)
# against `wasmbeam serve` with LOOPBACK environments. Writes the counts and
# every failing test to target/conformance/beam-suite.txt, and fails when
# fewer tests pass than the floor recorded in docs/beam-suite.md (so a
# regression cannot land); failures beyond the floor are the known gaps the
# doc lists.
# usage: bash scripts/beam-suite.sh        (after `cargo build -p wasmbeam-cli`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${WASMBEAM_BIN:-$root/target/debug/wasmbeam}"
[ -x "$bin" ] || cargo build --locked -q -p wasmbeam-cli
out="$root/target/conformance"
mkdir -p "$out"
xml="$out/beam-suite.xml"
set +e
WASMBEAM_BIN="$bin" "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider \
  --junitxml="$xml" tests/beam_suite/wasmbeam_portable_test.py >"$out/beam-suite.log" 2>&1
set -e
floor="$(sed -n 's/^Floor: \([0-9]*\) passed.*/\1/p' docs/beam-suite.md)"
"$root/.venv/bin/python" - "$xml" "$out/beam-suite.txt" "${floor:-0}" <<'PY'
import sys
import xml.etree.ElementTree as ET
xml, txt, floor = sys.argv[1], sys.argv[2], int(sys.argv[3])
passed, failed, skipped = [], [], []
for case in ET.parse(xml).getroot().iter("testcase"):
    name = case.get("name")
    if case.find("skipped") is not None:
        skipped.append(name)
    elif case.find("failure") is not None or case.find("error") is not None:
        failed.append(name)
    else:
        passed.append(name)
run = len(passed) + len(failed)
with open(txt, "w") as f:
    f.write("beam suite: %d of %d passed (%d failed, %d skipped by Beam's markers)\n"
            % (len(passed), run, len(failed), len(skipped)))
    for n in sorted(failed):
        f.write("  failed: %s\n" % n)
print(open(txt).read(), end="")
if len(passed) < floor:
    sys.exit("beam suite: %d passed, fewer than the floor of %d in docs/beam-suite.md; see target/conformance/beam-suite.log" % (len(passed), floor))
PY
