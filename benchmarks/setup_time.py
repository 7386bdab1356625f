"""Setup time of each workflow job: the previous installs (pip) against today's (uv), side by side.

    .venv/bin/python benchmarks/setup_time.py [--repeats 2]

Each job's install commands run exactly as the workflow runs them, in a fresh virtual
environment (what setup-python hands a job: an interpreter with nothing installed), with the
package cache warm (the runner restores it), from the package index:

- before: plan and collect ran `pip install .` (mlx-parity with MLX and mlx-lm); a probe job ran
  `pip install -r runner/pins/default.txt` then `pip install --no-deps .`;
- after: every job installs uv with `pip install --require-hashes`, then plan and collect run
  `uv pip install -r runner/pins/control.txt .` (no MLX) and a probe job
  `uv pip install -r runner/pins/default.txt ".[mlx]"`.

The first run of each warms its cache and is not counted; the median of ``--repeats`` runs is.
Needs the package index (PyPI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "runner" / "pins"
SETTINGS = ROOT / "src" / "mlx_parity" / "resources" / "workflow-defaults.toml"


def uv_requirement() -> str:
    uv = tomllib.loads(SETTINGS.read_text())["workflow"]["uv"]
    return f"uv=={uv['version']} " + " ".join(f"--hash=sha256:{h}" for h in uv["hashes"])


def before(job: str, python: str) -> list[list[str]]:
    pip = [python, "-m", "pip", "install", "--quiet"]
    if job == "probe":
        return [[*pip, "-r", str(PINS / "default.txt")], [*pip, "--no-deps", str(ROOT)]]
    return [[*pip, str(ROOT)]]


def after(job: str, python: str, uv_file: Path) -> list[list[str]]:
    uv = [python, "-m", "uv", "pip", "install", "--quiet", "--python", python]
    install_uv = [python, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps"]
    if job == "probe":
        last = [*uv, "-r", str(PINS / "default.txt"), f"{ROOT}[mlx]"]
    else:
        last = [*uv, "-r", str(PINS / "control.txt"), str(ROOT)]
    return [[*install_uv, "-r", str(uv_file)], last]


def timed_job(commands, env: dict[str, str], scratch: Path) -> float:
    """Seconds to run the job's install commands in a fresh virtual environment."""
    venv = scratch / f"venv-{time.monotonic_ns()}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    tic = time.perf_counter()
    for command in commands(python):
        done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlx-parity-setup-") as tmp:
        scratch = Path(tmp)
        uv_file = scratch / "uv-requirements.txt"
        uv_file.write_text(uv_requirement() + "\n")
        env = {
            **os.environ,
            "PIP_CACHE_DIR": str(scratch / "pip-cache"),
            "UV_CACHE_DIR": str(scratch / "uv-cache"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        print(f"{'job':<10}{'before (pip)':>14}{'after (uv)':>12}{'after/before':>14}")
        for job in ("plan", "probe", "collect"):
            layouts = {
                "before": lambda python, job=job: before(job, python),
                "after": lambda python, job=job: after(job, python, uv_file),
            }
            medians = {}
            for name, commands in layouts.items():
                timed_job(commands, env, scratch)  # warms the cache, as a restored cache would
                runs = [timed_job(commands, env, scratch) for _ in range(args.repeats)]
                medians[name] = statistics.median(runs)
            ratio = medians["after"] / medians["before"]
            print(f"{job:<10}{medians['before']:>13.1f}s{medians['after']:>11.1f}s{ratio:>13.2f}x")


if __name__ == "__main__":
    main()
