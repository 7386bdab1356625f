"""Time for ``explain`` to name each defect of the detection suite on this machine.

    .venv/bin/python benchmarks/explain_time.py [CANDIDATE ...]

With candidate function names (``train_cosine_schedule``), only those are measured.

Each candidate trainer (examples/candidates/candidates.py) trains the discriminating round's three
seeds, then explain measures the noise floor here and searches the core's knob space. Measured
two ways in one run: a cold search (the floor measured and a new runner: base and single-knob
traces trained for this candidate alone, what one `mlx-parity explain` call costs) and a warm
one (a runner shared across candidates, as the test suite does). Target: under 60 s per
candidate on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mlx_parity.cell import ModelSource, run_cell
from mlx_parity.commands.explain import measured_allowance
from mlx_parity.diagnose.explain import context_from, explain, targets_from
from mlx_parity.diagnose.traces import TraceRunner
from mlx_parity.knobs import apply
from mlx_parity.matrix import ResolvedProbe, resolve_round
from mlx_parity.probes import Probe
from mlx_parity.trainers import lookup

# The candidate trainers (plugin:candidates:<function>) and their table live with the test
# suite; they are put on the path here (and imported by name when a probe loads them).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "candidates"))

from detection_cases import CASES, ROUND, SEEDS  # noqa: E402


def main() -> None:
    rnd = resolve_round(ROUND)
    source = ModelSource(rnd.fixture.model_path())
    settings = rnd.probe("core").knobs
    shared = TraceRunner(rnd.fixture, source)
    print(f"{'candidate':<32}{'cold':>8}{'warm':>8}{'configs':>9}  answer", flush=True)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        chosen = sys.argv[1:]
        for case in [c for c in CASES if not chosen or c.function in chosen]:
            probe_id = case.function.replace("_", "-")
            trainer = lookup(case.trainer)
            knobs = apply(settings, dict(case.settings))
            probe = ResolvedProbe(Probe(id=probe_id, trainer=trainer.name), trainer, knobs, "any")
            out = Path(tmp) / case.function
            results = run_cell(ROUND, probe, rnd.fixture, list(SEEDS), out, source=source)
            base, _ = context_from(results)
            targets = targets_from(results, len(SEEDS))
            tic = time.perf_counter()
            runner = TraceRunner(rnd.fixture, source)
            floor = measured_allowance(runner, base, list(SEEDS))
            cold = explain(runner, base, targets, floor)
            cold_s = time.perf_counter() - tic
            tic = time.perf_counter()
            explain(shared, base, targets, floor)
            warm_s = time.perf_counter() - tic
            worst = max(worst, cold_s)
            answer = cold.headline().split(" (")[0]
            print(
                f"{case.function:<32}{cold_s:>7.1f}s{warm_s:>7.1f}s{cold.tried:>9}  {answer}",
                flush=True,
            )
    print(f"slowest cold explain: {worst:.1f}s (target < 60s)")


if __name__ == "__main__":
    main()
