"""Regenerate the README's "Parity of published MLX trainers" section from a real run.

    .venv/bin/python tools/peers_section.py [--out out] [--workers 2] [--reuse]

Runs the ``peers`` and ``peers-discriminate`` rounds (mlx-lm, the core and every published
trainer's adapter, faithful and with the trainer's own defaults), then rewrites the section
between the README's ``<!-- peers:start -->`` and ``<!-- peers:end -->`` markers: the versions,
the date, per trainer what the reports found against mlx-lm, and what ``mlx-parity explain``
makes of each adapter's seed results on the discriminating fixture: the configuration of the
core that reproduces it within the noise floor, or what it cannot explain.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- peers:start -->", "<!-- peers:end -->"
ROUNDS = ("peers", "peers-discriminate")
TRAINERS = {"unsloth-zoo": "unsloth-zoo", "mlx-tune": "mlx-tune", "mlx-lm-lora": "mlx-lm-lora"}


def run_round(round_id: str, out: Path, workers: int, reuse: bool) -> dict:
    """Run the round, or with ``reuse`` collect the seed results an earlier run left."""
    folder = out / round_id
    if reuse and any(folder.glob("*__seed*.json")):
        command = [sys.executable, "-m", "mlx_parity", "collect", str(folder)]
        command += ["--round", round_id, "--json", str(folder / "report.json")]
    else:
        command = [sys.executable, "-m", "mlx_parity", "run", "--round", round_id, "--quiet"]
        command += ["--out", str(folder), "--workers", str(workers)]
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def finding(probe: dict) -> str:
    """What the report says of one probe, in one cell."""
    seeds = [s for s in probe["seeds"] if s.get("trace") not in (None, "unavailable")]
    first = min(
        (s for s in seeds if s.get("divergence_step")),
        key=lambda s: s["divergence_step"],
        default=None,
    )
    parts = []
    if first is not None:
        parts.append(first["trace_detail"].split(" (losses")[0])
    elif seeds:
        parts.append(seeds[0]["trace_detail"])
    structural = next((s["structural"] for s in seeds if s.get("structural")), None)
    if structural and (first is None or first.get("divergence_signal") != "structure"):
        parts.append(structural.removeprefix("structural divergence "))
    if probe.get("unhonoured"):
        parts.append("cannot honour: " + ", ".join(probe["unhonoured"]))
    if probe.get("seed_insensitive"):
        parts.append("seeds have no effect")
    return "; ".join(parts)


def explain_probe(folder: Path, probe_id: str) -> str:
    """``mlx-parity explain``'s headline for one probe's seed results, with its exit code."""
    command = [sys.executable, "-m", "mlx_parity", "explain", str(folder), "--probe", probe_id]
    done = subprocess.run(
        [*command, "--quiet"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        return f"explain failed (exit {done.returncode}): {done.stderr.strip()[-200:]}"
    headline = lines[0].removeprefix(f"{probe_id}: ")
    return f"{headline} (exit {done.returncode})"


def section(reports: dict[str, dict], explained: dict[str, str]) -> str:
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("mlx", "mlx-lm", *TRAINERS.values())
    )
    lines = [
        START,
        "",
        f"Measured {datetime.date.today().isoformat()} on the embedded model, 3 seeds "
        f"(`tools/peers_section.py` regenerates this): {versions}. Each cell is what the "
        "collector reports against mlx-lm: the first step a loss departs, the first "
        "structural difference, and what the adapter declared its trainer cannot honour. The "
        "last column is `mlx-parity explain` on the discriminating fixture's seed results.",
        "",
        "| trainer | mode | smoke fixture (`peers`) | discriminating (`peers-discriminate`) "
        "| explain (discriminating) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for trainer in TRAINERS:
        for mode, probe_id in (("faithful", trainer), ("its defaults", f"{trainer}-defaults")):
            cells = [
                finding(next(p for p in reports[r]["probes"] if p["id"] == probe_id))
                for r in ROUNDS
            ]
            lines.append(
                f"| {trainer} | {mode} | {cells[0]} | {cells[1]} | {explained[probe_id]} |"
            )
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--reuse", action="store_true", help="collect the seed results already in --out"
    )
    args = parser.parse_args()
    reports = {r: run_round(r, args.out, args.workers, args.reuse) for r in ROUNDS}
    explained = {
        probe_id: explain_probe(args.out / ROUNDS[1], probe_id)
        for trainer in TRAINERS
        for probe_id in (trainer, f"{trainer}-defaults")
    }
    text = README.read_text(encoding="utf-8")
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    README.write_text(before + section(reports, explained) + after, encoding="utf-8")
    print(section(reports, explained))


if __name__ == "__main__":
    main()
