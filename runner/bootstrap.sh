#!/usr/bin/env bash
# Install what a probe job installs, the way the workflow does, into ./.venv: uv (pinned by
# version and sha256 in mlx_parity/resources/workflow-defaults.toml, checked by pip), then a
# round's pin set together with this checkout and its `mlx` extra. For self-hosted runners and
# for reproducing a probe job by hand.
#   runner/bootstrap.sh [pins]      pins: a file name under runner/pins/ (default: "default")
#   PYTHON=python3.12 runner/bootstrap.sh
set -euo pipefail
pins="${1:-default}"
case "$pins" in
  *[!A-Za-z0-9._-]*|"") echo "bootstrap: bad pins name: $pins" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
file="$root/runner/pins/$pins.txt"
[ -f "$file" ] || { echo "bootstrap: no pins file $file" >&2; exit 2; }
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: mlx-parity needs Python 3.11 or newer; $python is: $("$python" -V 2>&1)" >&2
  echo "bootstrap: run it as PYTHON=/path/to/python3.12 runner/bootstrap.sh" >&2
  exit 2
fi
"$python" -m venv "$root/.venv"
venv_python="$root/.venv/bin/python"
uv_requirements="$(mktemp)"
trap 'rm -f "$uv_requirements"' EXIT
"$venv_python" - "$root/src/mlx_parity/resources/workflow-defaults.toml" > "$uv_requirements" <<'PY'
import sys, tomllib
uv = tomllib.load(open(sys.argv[1], "rb"))["workflow"]["uv"]
print(f"uv=={uv['version']} " + " ".join(f"--hash=sha256:{h}" for h in uv["hashes"]))
PY
"$venv_python" -m pip install --quiet --require-hashes --no-deps -r "$uv_requirements"
"$venv_python" -m uv pip install --python "$venv_python" -r "$file" "${root}[mlx]"
echo "installed pins '$pins' and $root into $root/.venv"
