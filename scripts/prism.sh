#!/usr/bin/env bash
# Builds Beam's Prism runner v2.77.0 from the Go module proxy into
# .cache/bin/prism (once; about 6 minutes on 2 cores) and prints its path.
# The benchmarks run it beside wasmbeam; nothing in the test suite needs it.
# usage: bash scripts/prism.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.cache/bin"
if [ ! -x "$bin/prism" ] || [ "$(cat "$bin/prism.version" 2>/dev/null)" != "v2.77.0" ]; then
  mkdir -p "$bin"
  command -v go >/dev/null || { echo "prism: the Go toolchain is needed to build Prism" >&2; exit 1; }
  GOBIN="$bin" GOFLAGS=-mod=mod go install github.com/apache/beam/sdks/v2/go/cmd/prism@v2.77.0 >&2
  echo v2.77.0 >"$bin/prism.version"
fi
echo "$bin/prism"
