"""Bisect the knobs on which two core probes differ.

Given probes A and B, run A, B and A with every subset of B's differing knobs, and report the
smallest subset whose trace reproduces B's (so the other differences are inert on this
fixture), plus, for every single knob, where its own trace first departs from A's. When no
single knob reproduces B the answer is an interaction and says so.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..artifact import Row
from ..knobs import Knobs
from ..traces import Allowance, TraceComparison, compare_steps
from .space import Change, applied, describe
from .traces import TraceRunner


@dataclass(frozen=True)
class SubsetResult:
    changes: tuple[Change, ...]
    # Per seed: where this configuration departs from A, and whether it reproduces B.
    from_a: dict[int, TraceComparison | None]
    reproduces_b: bool


@dataclass
class Bisection:
    from_id: str
    to_id: str
    seeds: list[int]
    differing: tuple[Change, ...]
    b_from_a: dict[int, TraceComparison | None]
    singles: list[SubsetResult]
    culprit: tuple[Change, ...] | None
    tried: int
    seconds: float

    @property
    def b_diverges(self) -> bool:
        return _moves(self.b_from_a)

    def report(self) -> str:
        lines = [
            f"bisect {self.from_id} -> {self.to_id} on seeds {', '.join(map(str, self.seeds))}: "
            f"they differ in {describe(self.differing)}"
        ]
        if not self.differing:
            lines.append("the two probes resolve to the same configuration: nothing to bisect")
            return "\n".join(lines)
        if not self.b_diverges:
            lines.append(
                f"{self.to_id} does not diverge from {self.from_id} on this fixture: every "
                "difference is inert here (use a fixture that exercises them)"
            )
        elif self.culprit is not None and len(self.culprit) == 1:
            lines.append(f"culprit: {describe(self.culprit)} alone reproduces {self.to_id}")
        elif self.culprit is not None:
            lines.append(
                f"culprit: the interaction of {describe(self.culprit)} — no single knob "
                f"reproduces {self.to_id}, these together do"
            )
        width = max(len(c.describe()) for c in self.differing)
        lines += ["", f"  {'knob alone':<{width}}  first divergence from {self.from_id}"]
        for single in self.singles:
            mark = "  <- reproduces " + self.to_id if single.reproduces_b else ""
            lines.append(f"  {describe(single.changes):<{width}}  {_first(single.from_a)}{mark}")
        lines.append(f"  {'(all: ' + self.to_id + ')':<{width}}  {_first(self.b_from_a)}")
        seen = [describe(s.changes) for s in self.singles if _moves(s.from_a)]
        unseen = [describe(s.changes) for s in self.singles if not _moves(s.from_a)]
        lines += [
            "",
            "this fixture can see:   " + (", ".join(seen) or "none of them"),
            "this fixture cannot see: " + (", ".join(unseen) or "nothing"),
            "",
            f"ran {self.tried} configurations in {self.seconds:.1f}s",
        ]
        return "\n".join(lines)


def _moves(by_seed: dict[int, TraceComparison | None]) -> bool:
    return any(d is not None for d in by_seed.values())


def _first(by_seed: dict[int, TraceComparison | None]) -> str:
    hits = [(d.step, seed, d) for seed, d in by_seed.items() if d is not None]
    if not hits:
        return "none (identical)"
    _, seed, divergence = min(hits, key=lambda hit: hit[:2])
    return f"{divergence.where} (seed {seed}; {len(hits)}/{len(by_seed)} seeds diverge)"


def bisect(
    runner: TraceRunner,
    a: Knobs,
    b: Knobs,
    seeds: list[int],
    tolerance: float = 0.0,
    from_id: str = "A",
    to_id: str = "B",
    progress: Callable[[str], None] = lambda text: None,
) -> Bisection:
    tic = time.perf_counter()
    allowance = Allowance.of(tolerance)
    differing = tuple(sorted(Change(k, v) for k, v in b.differing_from(a).items()))
    traces_a = {s: runner.trace(a, s) for s in seeds}
    traces_b = {s: runner.trace(b, s) for s in seeds}
    tried = 2

    def departures(
        traces: dict[int, list[Row]], target: dict[int, list[Row]]
    ) -> dict[int, TraceComparison | None]:
        """Per seed: where ``traces`` first depart from ``target`` (None: they agree)."""
        found = {s: compare_steps(traces[s], target[s], allowance) for s in seeds}
        return {s: c if c.diverges else None for s, c in found.items()}

    def run(changes: tuple[Change, ...]) -> SubsetResult:
        nonlocal tried
        tried += 1
        progress(f"trying {describe(changes)}")
        traces = {s: runner.trace(applied(a, changes), s) for s in seeds}
        return SubsetResult(
            changes, departures(traces, traces_a), not _moves(departures(traces, traces_b))
        )

    def reproducing() -> Iterator[tuple[Change, ...]]:
        """The subsets of B's differences that reproduce B, smallest first."""
        yield from (single.changes for single in singles if single.reproduces_b)
        for size in range(2, len(differing)):
            yield from (c for c in itertools.combinations(differing, size) if run(c).reproduces_b)
        yield differing  # B itself: every difference is needed

    b_from_a = departures(traces_b, traces_a)
    if len(differing) == 1:
        # A with B's only difference is B itself: nothing more to run.
        singles = [SubsetResult(differing, b_from_a, True)]
    else:
        singles = [run((change,)) for change in differing]
    culprit = next(reproducing()) if _moves(b_from_a) and differing else None
    return Bisection(
        from_id=from_id,
        to_id=to_id,
        seeds=seeds,
        differing=differing,
        b_from_a=b_from_a,
        singles=singles,
        culprit=culprit,
        tried=tried,
        seconds=time.perf_counter() - tic,
    )
