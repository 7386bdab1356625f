"""Explain a candidate trainer's traces as a configuration of the core.

Starting from the configuration the candidate was asked to run (its artifacts' ``config``),
search the core's knob space for the configuration whose per-step losses match the
candidate's, seed by seed:

1. the base itself (the candidate behaves like mlx-lm);
2. every single-knob change, run in full on the first seed — this also measures which defect
   classes this fixture can see at all (a change that leaves the base trace unmoved is
   invisible here, and the report says so);
3. a beam of combinations grown from the changes that push the first divergence furthest.

A configuration that matches on the first seed is confirmed on the others. When nothing
matches, the answer is "unexplained", with the configuration that came closest and where it
departs — never a forced guess.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from ..artifact import SeedResult
from ..fixture import Fixture
from ..knobs import Knobs
from ..traces import TraceComparison, first_divergence
from .space import Change, applied, baseline_of, describe, meaning, search_space
from .traces import TraceRunner

BEAM_WIDTH = 3
MAX_CHANGES = 3


@dataclass(frozen=True)
class Candidate:
    """A configuration tried, and how far it agreed with the target on the first seed."""

    changes: tuple[Change, ...]
    divergence: TraceComparison | None  # None: matched every step

    def closeness(self) -> tuple[float, float]:
        # Later first divergence is closer; at the same step, a smaller jump is closer.
        if self.divergence is None:
            return (float("inf"), 0.0)
        size = self.divergence.size
        return (self.divergence.step or 0, -(float("inf") if size is None else size))


@dataclass
class Explanation:
    seeds: list[int]
    tolerance: float
    base: Knobs
    matched: tuple[Change, ...] | None
    closest: Candidate
    visible: list[str]
    invisible: list[str]
    tried: int
    steps_trained: int
    seconds: float
    confirmations: dict[int, TraceComparison | None] = field(default_factory=dict)

    def headline(self) -> str:
        how = "bit for bit" if self.tolerance == 0 else f"within {self.tolerance:g} per step"
        evidence = f"({how}, seeds {_seeds(self.seeds)})"
        if self.matched == ():
            return f"identical to the core at mlx-lm's values {evidence}"
        if self.matched:
            return f"behaves like core with {describe(self.matched)} {evidence}"
        divergence = self.closest.divergence
        where = divergence.where if divergence else "a later seed"
        return (
            "unexplained: no configuration of the core's knobs reproduces it; closest is core "
            f"with {describe(self.closest.changes)}, which departs at {where}"
        )

    def report(self) -> str:
        lines = [self.headline(), ""]
        lines.append(
            f"searched {self.tried} configurations ({self.steps_trained} training steps) "
            f"in {self.seconds:.1f}s"
        )
        lines.append("this fixture can see:   " + (", ".join(self.visible) or "nothing"))
        lines.append("this fixture cannot see: " + (", ".join(self.invisible) or "nothing"))
        for knob in self.invisible:
            lines.append(f"  - {knob}: {meaning(knob)} leaves the trace unmoved")
        return "\n".join(lines)


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def targets_from(results: list[SeedResult], max_seeds: int) -> dict[int, list[float]]:
    """The loss traces to explain, one per seed, from usable artifacts."""
    usable = [r for r in sorted(results, key=lambda r: r.seed) if r.rows and r.status != "error"]
    return {r.seed: [row["loss"] for row in r.rows] for r in usable[:max_seeds]}


def explain(
    runner: TraceRunner,
    base: Knobs,
    targets: dict[int, list[float]],
    tolerance: float = 0.0,
    progress=None,
) -> Explanation:
    tic = time.perf_counter()
    seeds = list(targets)
    first = seeds[0]
    steps = len(targets[first])
    base = base.model_copy(update={"steps": steps})

    def tell(text: str) -> None:
        if progress is not None:
            progress(text)

    def try_config(changes: tuple[Change, ...]) -> Candidate:
        losses = runner.trace(applied(base, changes), first, targets[first], tolerance)
        return Candidate(changes, first_divergence(losses, targets[first], tolerance))

    def confirm(changes: tuple[Change, ...]) -> dict[int, TraceComparison | None]:
        knobs = applied(base, changes)
        return {
            s: first_divergence(
                runner.trace(knobs, s, targets[s], tolerance), targets[s], tolerance
            )
            for s in seeds[1:]
        }

    # Full traces of the base and of every single change on the first seed: they answer both
    # "which change matches" and "which changes does this fixture make visible at all".
    tell("base configuration")
    base_trace = runner.trace(base, first)
    base_candidate = Candidate((), first_divergence(base_trace, targets[first], tolerance))
    singles: list[Candidate] = []
    visible, invisible = [], []
    for change in search_space(base):
        tell(f"single change {change.describe()}")
        trace = runner.trace(applied(base, (change,)), first)
        moved = first_divergence(trace, base_trace, 0.0) is not None
        if change.knob not in visible and moved:
            visible.append(change.knob)
        singles.append(Candidate((change,), first_divergence(trace, targets[first], tolerance)))
    invisible = [k for k in dict.fromkeys(c.knob for c in search_space(base)) if k not in visible]

    tried = [base_candidate, *singles]
    matched, confirmations = None, {}
    for candidate in [base_candidate, *singles]:
        if candidate.divergence is None:
            confirmations = confirm(candidate.changes)
            if all(d is None for d in confirmations.values()):
                matched = candidate.changes
                break

    beam = sorted(singles, key=Candidate.closeness, reverse=True)[:BEAM_WIDTH]
    size = 1
    while matched is None and size < MAX_CHANGES:
        size += 1
        grown: dict[tuple[Change, ...], Candidate] = {}
        for parent, change in itertools.product(beam, search_space(base)):
            if change.knob in {c.knob for c in parent.changes}:
                continue
            changes = tuple(sorted((*parent.changes, change)))
            if changes in grown:
                continue
            tell(f"combination {describe(changes)}")
            grown[changes] = try_config(changes)
        tried += grown.values()
        for candidate in sorted(grown.values(), key=Candidate.closeness, reverse=True):
            if candidate.divergence is None:
                confirmations = confirm(candidate.changes)
                if all(d is None for d in confirmations.values()):
                    matched = candidate.changes
                    break
        beam = sorted(grown.values(), key=Candidate.closeness, reverse=True)[:BEAM_WIDTH]

    closest = max(tried, key=Candidate.closeness)
    if matched is None and closest.divergence is None:
        # Matched the first seed but not the others: say where the confirmation failed.
        failing = next((d for d in confirmations.values() if d is not None), None)
        closest = Candidate(closest.changes, failing)
    return Explanation(
        seeds=seeds,
        tolerance=tolerance,
        base=base,
        matched=matched,
        closest=closest,
        visible=visible,
        invisible=invisible,
        tried=len(tried),
        steps_trained=runner.steps_trained,
        seconds=time.perf_counter() - tic,
        confirmations=confirmations,
    )


def context_from(results: list[SeedResult]) -> tuple[Knobs, Fixture]:
    """Where the search starts — the candidate's training settings with every behaviour knob
    at mlx-lm's value — and the fixture it ran on, as its artifacts record them."""
    first = results[0]
    settings = Knobs.model_validate(first.config)
    return baseline_of(settings), Fixture.model_validate(first.fixture)
