#!/usr/bin/env bash
# Install a round's pinned dependency set and mlx-parity into ./.venv (what a probe job does).
set -euo pipefail
pins="${1:-default}"
case "$pins" in
  *[!A-Za-z0-9._-]*|"") echo "bootstrap: bad pins name: $pins" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
file="$root/runner/pins/$pins.txt"
[ -f "$file" ] || { echo "bootstrap: no pins file $file" >&2; exit 2; }
python3 -m venv "$root/.venv"
"$root/.venv/bin/python" -m pip install --quiet -r "$file"
"$root/.venv/bin/python" -m pip install --quiet --no-deps -e "$root"
echo "installed pins '$pins' into $root/.venv"
