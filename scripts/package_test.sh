#!/usr/bin/env bash
# Build the sdist and the wheel (the wheel from the sdist, so a file missing from either fails), install the
# wheel into a fresh venv outside the checkout, and run `memlane demo` and scripts/smoke_installed.py there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/memlane-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" -m build --no-isolation --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheel=("$work"/dist/memlane-*.whl)
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheel[0]}"
cd "$work"  # nothing of the checkout on sys.path
MEMLANE_HOME="$work/home" MEMLANE_LLM=none "$work/venv/bin/memlane" demo >"$work/demo.log" \
    || { cat "$work/demo.log"; exit 1; }
"$work/venv/bin/memlane" --version
MEMLANE_HOME="$work/home" "$work/venv/bin/python" "$root/scripts/smoke_installed.py"
echo "package test passed: $(basename "${wheel[0]}") and $(basename "$work"/dist/memlane-*.tar.gz)"
