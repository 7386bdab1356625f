"""``mlx-parity run --round ID``: a whole round locally — plan, train on a worker pool, collect."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from .. import artifact
from ..errors import ExitCode, UsageError
from ..fixture import Fixture
from ..matrix import ResolvedProbe, ResolvedRound, resolve_round
from ..pool import Event, Task, run_tasks
from . import add_matrix_option, output_directory


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--round", required=True, dest="round_id", metavar="ROUND_ID", help="round ID"
    )
    parser.add_argument("--out", type=Path, help="artifact directory (default out/<round>)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: the number of CPUs, os.cpu_count())",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip seeds already finished with the trainer, settings and fixture the round file "
        "gives today; a seed recorded otherwise, or ended in an error, is retrained",
    )
    add_matrix_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def plan_tasks(rnd: ResolvedRound, out_dir: Path, resume: bool) -> tuple[list[Task], int]:
    """Every (probe, seed) of the round as a task, and how many ``resume`` skipped: seeds that
    finished with the trainer, settings and fixture the round file resolves today."""
    tasks, skipped = [], 0
    for probe in rnd.probes.values():
        for seed in rnd.seeds:
            if resume and _finished(out_dir, rnd.id, probe, rnd.fixture, seed):
                skipped += 1
                continue
            calibrate = seed in rnd.calibration_seeds(probe.id)
            task = Task(rnd.id, probe, rnd.fixture, seed, str(out_dir), rnd.round.device, calibrate)
            tasks.append(task)
    return tasks, skipped


def _finished(
    out_dir: Path, round_id: str, probe: ResolvedProbe, fixture: Fixture, seed: int
) -> bool:
    path = out_dir / artifact.artifact_name(round_id, probe.id, seed)
    try:
        result = artifact.load(path)
    except artifact.ArtifactError:
        return False
    same_cell = (result.round_id, result.probe_id, result.seed) == (round_id, probe.id, seed)
    # A seed trained before the round file changed would be judged as if it ran today's settings.
    same_settings = (result.trainer, result.config, result.options, result.fixture) == (
        probe.trainer.name,
        probe.knobs.model_dump(mode="json"),
        probe.probe.options,
        fixture.model_dump(mode="json"),
    )
    return same_cell and same_settings and result.status in ("ok", "nonfinite")


class RoundProgress:
    """One line per finished seed, and on a terminal one overall bar (steps of every seed): in a
    log (a CI job, a pipe) a redrawn bar is noise, and the lines say it all."""

    def __init__(self, tasks: list[Task], quiet: bool):
        from tqdm import tqdm

        self.per_probe_total = Counter(t.probe.id for t in tasks)
        self.per_probe_done: Counter[str] = Counter()
        self.per_probe_pass: Counter[str] = Counter()
        self.steps = {t.key: t.probe.knobs.steps for t in tasks}
        self.seen_steps: dict[tuple[str, int], int] = {}
        self.bar = tqdm(
            total=sum(self.steps.values()),
            unit="step",
            desc="round",
            file=sys.stderr,
            disable=quiet or not sys.stderr.isatty(),
            dynamic_ncols=True,
        )
        self.width = max((len(p) for p in self.per_probe_total), default=8)

    def __call__(self, event: Event) -> None:
        if event.kind not in ("step", "finished", "lost"):
            return
        key = (event.probe_id, event.seed)
        # An ended seed counts the steps it skipped (stopped early), so the bar reaches the end.
        step = event.step if event.kind == "step" else self.steps.get(key, 0)
        self.bar.update(step - self.seen_steps.get(key, 0))
        self.seen_steps[key] = step
        if event.kind == "step":
            return
        self.per_probe_done[event.probe_id] += 1
        self.per_probe_pass[event.probe_id] += event.passed
        done, total = self.per_probe_done[event.probe_id], self.per_probe_total[event.probe_id]
        if event.kind == "lost":
            outcome = f"LOST ({event.detail})"
        else:
            # "pass"/"fail" is the smoke check (cf_loss), not parity, which collect judges.
            outcome = f"{event.status:<9} smoke {'pass' if event.passed else 'fail'}"
            if event.detail:
                outcome += f"  {event.detail[:80]}"
        # Before the line is written: writing it redraws the bar, with this count.
        cells = (f"{p}:{self.per_probe_done[p]}/{n}" for p, n in self.per_probe_total.items())
        self.bar.set_postfix_str(" ".join(cells), refresh=False)
        self.bar.write(
            f"  {event.probe_id:<{self.width}}  seed {event.seed:>6}  {outcome}"
            f"   [{done}/{total} seeds, {self.per_probe_pass[event.probe_id]} smoke pass]",
            file=sys.stderr,
        )


def _run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    rnd = resolve_round(args.round_id, args.matrix)
    for probe in rnd.probes.values():
        if probe.trainer.is_plugin:
            probe.trainer.load()  # a plugin that does not import is refused before any seed
    out_dir = output_directory(args.out or Path("out") / rnd.id)
    tasks, skipped = plan_tasks(rnd, out_dir, args.resume)
    rnd.fixture.model_path()  # build the embedded model once, before workers race for it

    print(
        f"round {rnd.id}: {len(rnd.probes)} probes x {len(rnd.seeds)} seeds; "
        f"{len(tasks)} to train, {skipped} already finished; {args.workers} workers -> {out_dir}",
        file=sys.stderr,
    )
    progress = RoundProgress(tasks, args.quiet)
    tic = time.perf_counter()
    try:
        with progress.bar:  # closed before any line below is printed
            lost = run_tasks(tasks, args.workers, progress)
    except KeyboardInterrupt:
        print(
            f"interrupted: finished seeds are kept in {out_dir}; "
            f"rerun with --resume to complete the round",
            file=sys.stderr,
        )
        return ExitCode.INTERRUPTED
    print(f"trained {len(tasks)} seeds in {time.perf_counter() - tic:.1f}s", file=sys.stderr)
    if lost:
        names = ", ".join(f"{p} seed {s}" for p, s in lost)
        print(f"lost to a dead worker: {names}; rerun with --resume", file=sys.stderr)

    from .collect import collect_and_report

    return collect_and_report(out_dir, rnd, for_terminal=True)
