"""Explain a candidate trainer's seed results as a configuration of the core.

From the configuration the candidate was asked to run (its artifacts' ``config``) with every
behaviour knob at mlx-lm's value, search the core's knobs for the configuration whose every
recorded signal (batch structure, gradient norm, loss) matches the candidate's step by step,
within an allowance (by default the noise floor measured here):

1. the base itself (the candidate behaves like mlx-lm);
2. every single-knob change, run in full on the first seed; this also shows which defect classes
   the fixture can see at all (a change that moves no signal of the base's trace is invisible
   here, and the report says so). A constant gradient-norm ratio in the candidate's own signals
   is tried as that gradient scale;
3. a beam of combinations grown from the closest changes, each generation keeping only what came
   closer than the best before it. The signals prune it: when the candidate's batches are
   mlx-lm's, no change that alters batches can be part of the answer.

"Closest" weighs the whole traces, not how late a configuration departs: ``traces.distance``
(each signal's per-step disagreement on a log scale of allowances; a step whose batch differs
outweighs any loss difference), the mean over every seed of the few nearest on the first, so
a configuration that reproduces one seed and not another is not taken for the nearest. Within
a generation, where traces stop at their first departure, candidates are ordered by the signal
that parted (structure, then gradient norm, then loss) and by how far outside the allowance. A
match on the first seed is confirmed on the others. When nothing matches, the answer is
"unexplained", with what the candidate's signals show and the closest configuration: never a
forced guess.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..artifact import Row, SeedResult
from ..collect.markdown import knob_value_text
from ..errors import UsageError
from ..fixture import Fixture
from ..knobs import CLIP_ARGUMENTS, Knobs
from ..traces import (
    STRUCTURE_WEIGHT,
    Allowance,
    TraceComparison,
    TraceVerdict,
    compare_steps,
    compare_traces,
    distance,
    first_structural_difference,
    first_update_norm_ratio,
    format_ratio,
    loss_trace,
    plural,
    simple_scale,
)
from .space import GRAD_SCALES, Change, applied, baseline_of, describe, search_space
from .traces import TraceRunner

BEAM_WIDTH = 3
MAX_CHANGES = 3
# What the closest configuration's "distance" is, under the report that gives it.
DISTANCE_MEANING = (
    "distance: the mean over seeds and steps of log10(1 + difference / allowance) for the loss "
    f"and the gradient norm, {STRUCTURE_WEIGHT:g} instead for a step whose batch differs "
    "(0: agrees everywhere)"
)


@dataclass(frozen=True)
class Candidate:
    """A configuration tried, and how it compared with the target on the first seed."""

    changes: tuple[Change, ...]
    comparison: TraceComparison
    # traces.distance of its whole traces from the targets', the mean over the seeds (None:
    # only run to its departure).
    distance: float | None = None

    @property
    def divergence(self) -> TraceComparison | None:
        return self.comparison if self.comparison.diverges else None

    def evidence(self) -> tuple[int, float, int]:
        """Smaller is closer: which signal parted (none < loss < gradient norm < structure),
        how far outside the allowance the loss was where they parted (in allowances), and how
        early (a later parting is closer only between otherwise equal candidates)."""
        c = self.comparison
        if not c.diverges:
            return (0, 0.0, 0)
        rank = {"loss": 1, "length": 1, "grad_norm": 2, "structure": 3}[c.signal or "loss"]
        excess = math.inf
        if c.signal == "loss" and c.size is not None and c.step is not None:
            excess = c.size / max(c.allowance.at(c.step), 1e-30)
        return (rank, excess, -(c.step or 0))


@dataclass
class Explanation:
    seeds: list[int]
    allowance: Allowance
    matched: tuple[Change, ...] | None
    # How the match agreed on the first seed: identical, equivalent or close.
    matched_verdict: TraceVerdict | None
    closest: Candidate
    # What the candidate's own signals show against the base configuration.
    signals: list[str]
    visible: list[str]
    invisible: list[str]
    tried: int
    pruned: int
    steps_trained: int
    seconds: float

    def headline(self) -> str:
        how = {
            "identical": "bit for bit",
            "equivalent": "within the noise floor",
        }.get(self.matched_verdict or "", self.allowance.describe())
        evidence = f"({how}, seeds {', '.join(map(str, self.seeds))})"
        if self.matched == ():
            word = "identical" if self.matched_verdict == "identical" else "equivalent"
            return f"{word} to the core at mlx-lm's values {evidence}"
        if self.matched:
            return f"behaves like core with {describe(self.matched)} {evidence}"
        divergence = self.closest.divergence
        where = divergence.where if divergence else "a later seed"
        apart = ""
        if self.closest.distance is not None:
            apart = f" (distance {self.closest.distance:.2g})"
        return (
            "unexplained: no configuration of the core's knobs reproduces it; closest is core "
            f"with {describe(self.closest.changes)}, which departs at {where}{apart}"
        )

    def report(self) -> str:
        lines = [self.headline()]
        if self.matched is None and self.closest.distance is not None:
            lines.append(DISTANCE_MEANING)
        lines.append("")
        if self.signals:
            lines.append("what its seed results show against mlx-lm's configuration:")
            lines += [f"  - {signal}" for signal in self.signals]
        lines += [
            f"searched {self.tried} configurations ({self.steps_trained} training steps) "
            f"in {self.seconds:.1f}s; {self.pruned} combinations pruned by the signals",
            f"compared {self.allowance.describe()}",
            "this fixture can see:   " + (", ".join(self.visible) or "nothing"),
            "this fixture cannot see: " + (", ".join(self.invisible) or "nothing"),
        ]
        for knob in self.invisible:
            meaning = Knobs.model_fields[knob].description or knob
            lines.append(f"  - {knob}: {meaning} leaves the trace unmoved")
        return "\n".join(lines)


def targets_from(results: list[SeedResult], max_seeds: int) -> dict[int, list[Row]]:
    """The traces to explain, one per seed, from usable artifacts."""
    ordered = sorted(results, key=lambda r: r.seed)
    usable = [r for r in ordered if unusable_reason(r) is None]
    return {r.seed: list(r.rows) for r in usable[:max_seeds]}


def unusable_reason(result: SeedResult) -> str | None:
    """Why a seed result has no trace to explain ("errored (ValueError: …)", "has no steps");
    None when it has one."""
    if result.status == "error":
        return f"errored ({result.error_summary})"
    return None if result.rows else "has no steps"


def seeds_text(seeds: Sequence[int]) -> str:
    """ "seed 1" or "seeds 1, 42"."""
    return f"{plural(len(seeds), 'seed')} {', '.join(map(str, seeds))}"


def suggested_scale(ratio: float | None, allowance: Allowance) -> float | None:
    """The gradient scale a constant norm ratio suggests, as the simple number a trainer would
    have written (1/2, 2, 0.125); None when the ratio is 1 within the allowance."""
    if ratio is None or not 0 < ratio < math.inf or abs(ratio - 1) <= allowance.grad_norm:
        return None
    return simple_scale(ratio) or float(f"{ratio:.4g}")


def explain(
    runner: TraceRunner,
    base: Knobs,
    targets: dict[int, list[Row]],
    allowance: Allowance | float = 0.0,
    progress: Callable[[str], None] = lambda text: None,
) -> Explanation:
    tic = time.perf_counter()
    allowance = Allowance.of(allowance)
    seeds = list(targets)
    first = seeds[0]
    # ``base.steps`` stays what the seeds recorded: a trainer that stopped short of them (or ran
    # past them) has a trace of another length, which is a divergence to report, not a target.

    def compare(changes: tuple[Change, ...], seed: int) -> TraceComparison:
        rows = runner.trace(applied(base, changes), seed, targets[seed], allowance)
        return compare_steps(rows, targets[seed], allowance)

    # The other seeds' comparisons of every configuration that matched the first seed.
    confirmations: dict[tuple[Change, ...], list[TraceComparison]] = {}

    def first_match(candidates: Iterable[Candidate]) -> tuple[Change, ...] | None:
        """The closest candidate that matches on the first seed and is confirmed on the rest."""
        for candidate in sorted(candidates, key=Candidate.evidence):
            if candidate.divergence is None:
                others = [compare(candidate.changes, s) for s in seeds[1:]]
                confirmations[candidate.changes] = others
                if not any(c.diverges for c in others):
                    return candidate.changes
        return None

    # What the candidate's signals say against the base, before any search.
    progress("base configuration")
    base_runs = {seed: runner.trace(base, seed) for seed in seeds}
    base_rows = base_runs[first]
    base_candidate = Candidate((), compare_steps(base_rows, targets[first], allowance))
    ratio = gradient_ratio(targets[first], base_rows)
    signals = seed_signals(base_runs, targets, allowance)
    structure_agrees = first_structural_difference(base_rows, targets[first]) is None
    scale = suggested_scale(ratio, allowance)
    space = search_space(base, (scale,) if scale is not None else GRAD_SCALES)

    singles: list[Candidate] = []
    visible: list[str] = []
    restructuring: set[Change] = set()
    for change in space:
        progress(f"single change {change.describe()}")
        rows = runner.trace(applied(base, (change,)), first)
        if compare_steps(rows, base_rows).diverges and change.knob not in visible:
            visible.append(change.knob)
        if first_structural_difference(rows, base_rows) is not None:
            restructuring.add(change)
        singles.append(Candidate((change,), compare_steps(rows, targets[first], allowance)))
    invisible = [k for k in dict.fromkeys(c.knob for c in space) if k not in visible]

    tried = [base_candidate, *singles]
    matched = first_match(tried)

    # Batches that already agree with mlx-lm's rule out every change that alters them.
    growable = [c for c in space if not (structure_agrees and c in restructuring)]
    pruned = 0
    beam = sorted(singles, key=Candidate.evidence)[:BEAM_WIDTH]
    for _ in range(MAX_CHANGES - 1):
        if matched is not None or not beam:
            break
        grown: dict[tuple[Change, ...], Candidate] = {}
        for parent, change in itertools.product(beam, space):
            if change.knob in {c.knob for c in parent.changes}:
                continue
            changes = tuple(sorted((*parent.changes, change)))
            if changes in grown:
                continue
            if any(c not in growable for c in changes):
                pruned += 1
                continue
            progress(f"combination {describe(changes)}")
            grown[changes] = Candidate(changes, compare(changes, first))
        tried += grown.values()
        matched = first_match(grown.values())
        # Only what came closer than the best so far is worth growing further.
        best = min(c.evidence() for c in beam)
        closer = [c for c in grown.values() if c.evidence() < best]
        beam = sorted(closer, key=Candidate.evidence)[:BEAM_WIDTH]

    if matched is not None:
        closest = next(c for c in tried if c.changes == matched)
    else:
        closest = closest_by_distance(runner, base, tried, targets, allowance)
        failing = next((c for c in confirmations.get(closest.changes, []) if c.diverges), None)
        if closest.divergence is None and failing is not None:
            # Matched the first seed but not the others: say where the confirmation failed.
            closest = Candidate(closest.changes, failing, closest.distance)
    return Explanation(
        seeds=seeds,
        allowance=allowance,
        matched=matched,
        matched_verdict=closest.comparison.verdict if matched is not None else None,
        closest=closest,
        signals=signals,
        visible=visible,
        invisible=invisible,
        tried=len(tried),
        pruned=pruned,
        steps_trained=runner.steps_trained,
        seconds=time.perf_counter() - tic,
    )


def closest_by_distance(
    runner: TraceRunner,
    base: Knobs,
    tried: list[Candidate],
    targets: dict[int, list[Row]],
    allowance: Allowance,
) -> Candidate:
    """The configuration whose whole traces are nearest the targets': the base, every single
    change (traced in full on the first seed already) and the best few combinations are ranked
    on the first seed; the few nearest there run on every seed, and the nearest on average over
    the seeds is the answer (one that reproduces the first seed alone is not taken for it).
    Ranking on one seed first spares a full run of every change on every seed."""
    pool = [c for c in tried if len(c.changes) <= 1]
    pool += sorted((c for c in tried if len(c.changes) > 1), key=Candidate.evidence)[:BEAM_WIDTH]

    def apart(candidate: Candidate, seeds: Iterable[int]) -> float:
        knobs = applied(base, candidate.changes)
        return statistics.fmean(
            distance(runner.trace(knobs, seed), targets[seed], allowance) for seed in seeds
        )

    first = next(iter(targets))
    shortlist = sorted(pool, key=lambda c: apart(c, [first]))[:BEAM_WIDTH]
    measured = [replace(c, distance=apart(c, targets)) for c in shortlist]
    return min(measured, key=lambda c: c.distance or 0.0)


def observed_signals(
    base_rows: list[Row], target: list[Row], ratio: float | None, allowance: Allowance
) -> list[str]:
    """What the candidate's steps show against the base configuration's, earliest signal
    first: its batches, its gradient norms (``ratio``: ``gradient_ratio``), its losses."""
    found = []
    structural = first_structural_difference(target, base_rows)
    if structural is not None:
        step, what = structural
        found.append(f"from step {step}: {what}")
    if ratio is not None and abs(ratio - 1) > allowance.grad_norm:
        found.append(f"gradient norm {format_ratio(ratio)} at the first update, against mlx-lm's")
    losses = compare_traces(loss_trace(target), loss_trace(base_rows), allowance)
    if losses.diverges:
        found.append(f"from {losses.where}")
    return found


def seed_signals(
    base_runs: dict[int, list[Row]], targets: dict[int, list[Row]], allowance: Allowance
) -> list[str]:
    """:func:`observed_signals` on every seed, each finding once with the seeds that show it
    (seeds may part at different steps, and the collector reports the earliest)."""
    seeds_of: dict[str, list[int]] = {}
    for seed, rows in base_runs.items():
        ratio = gradient_ratio(targets[seed], rows)
        for finding in observed_signals(rows, targets[seed], ratio, allowance):
            seeds_of.setdefault(finding, []).append(seed)
    return [f"{finding} ({seeds_text(seeds)})" for finding, seeds in seeds_of.items()]


def gradient_ratio(target: list[Row], base_rows: list[Row]) -> float | None:
    """The target's gradient norm over the base's at the first update — when both updates
    trained on the same batches; after other batches the norms differ for that reason alone."""
    update = next((r["step"] for r in base_rows if r["grad_norm"] is not None), None)
    structural = first_structural_difference(target, base_rows)
    if update is None or (structural is not None and structural[0] <= update):
        return None
    return first_update_norm_ratio(target, base_rows)


def context_from(results: list[SeedResult]) -> tuple[Knobs, Fixture]:
    """Where the search starts — the candidate's training settings with every behaviour knob
    at mlx-lm's value — and the fixture it ran on, as its artifacts record them. The search
    starts from one set of settings, so seeds trained under different ones have no single
    answer: refused, naming each setting they differ in."""
    differing = differing_settings(results)
    if differing:
        raise UsageError(
            f"{seeds_text([r.seed for r in results])} trained under different settings: "
            f"{'; '.join(differing)}; choose seeds trained alike with --seeds"
        )
    first = results[0]
    settings = Knobs.model_validate(first.config)
    return baseline_of(settings), Fixture.model_validate(first.fixture)


def recorded_settings(result: SeedResult) -> dict[str, Any]:
    """What a seed trained under: its trainer, fixture and knobs (clip as the policy its
    arguments resolve to, as ``Knobs.differing_from`` compares them)."""
    knobs = Knobs.model_validate(result.config).model_dump(exclude=set(CLIP_ARGUMENTS))
    fixture = Fixture.model_validate(result.fixture)
    return {"trainer": result.trainer, "fixture": fixture, **knobs}


def differing_settings(results: list[SeedResult]) -> list[str]:
    """Each setting the results disagree on, every value with the seeds that trained under it:
    "lr 0.0003 (seed 1), 0.0004 (seed 42)"; a fixture by its name."""
    recorded = {r.seed: recorded_settings(r) for r in results}
    found = []
    for name in recorded[results[0].seed]:
        # Every value hashes: Knobs and Fixture hold tuples, not lists.
        seeds_of: dict[Any, list[int]] = {}
        for seed, settings in recorded.items():
            seeds_of.setdefault(settings[name], []).append(seed)
        if len(seeds_of) > 1:
            values = (f"{setting_text(v)} ({seeds_text(seeds)})" for v, seeds in seeds_of.items())
            found.append(f"{name} {', '.join(values)}")
    return found


def setting_text(value: Any) -> str:
    return value.name if isinstance(value, Fixture) else knob_value_text(value)
