#!/usr/bin/env bash
# Idempotent set-up of everything wasmbeam's build and tests need.
# Safe to run again: each step checks before it installs.
#   - the Rust target wasm32-wasip2 (guest components)
#   - a project-local Python venv (.venv) with pinned packages (python/requirements.txt)
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
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
say "ready"
