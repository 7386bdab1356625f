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
    allowance: Allowance
    tried: int
    seconds: float

    @property
    def b_diverges(self) -> bool:
        return _moves(self.b_from_a)

    @property
    def culprit_alone(self) -> tuple[Change, ...]:
        """The culprit's knobs that move A's trace on their own (the others act only together)."""
        moving = {single.changes for single in self.singles if _moves(single.from_a)}
        return tuple(change for change in self.culprit or () if (change,) in moving)

    def verdict(self) -> str:
        """What the culprit does (a culprit must exist): alone, each contributing, or together."""
        culprit, alone = self.culprit or (), self.culprit_alone
        if len(culprit) == 1:
            return f"{describe(culprit)} alone reproduces {self.to_id}"
        if alone == culprit:
            return (
                f"{describe(culprit)} each diverge from {self.from_id} alone, but none alone "
                f"reproduces {self.to_id}; together they do"
            )
        together = (
            f"the interaction of {describe(culprit)} — no single knob reproduces {self.to_id}, "
            "only these together do"
        )
        if not alone:
            return together
        inert = tuple(change for change in culprit if change not in alone)
        verb = "diverges" if len(alone) == 1 else "diverge"
        return (
            f"{together} ({describe(alone)} {verb} from {self.from_id} alone; "
            f"{describe(inert)} only together with the others)"
        )

    def report(self) -> str:
        lines = [
            f"bisect {self.from_id} -> {self.to_id} on seeds {', '.join(map(str, self.seeds))}, "
            f"compared {self.allowance.describe()}: they differ in {describe(self.differing)}"
        ]
        if not self.differing:
            lines.append("the two probes resolve to the same configuration: nothing to bisect")
            return "\n".join(lines)
        if not self.b_diverges:
            lines.append(
                f"{self.to_id} does not diverge from {self.from_id} on this fixture: every "
                "difference is inert here (use a fixture that exercises them)"
            )
        elif self.culprit is not None:
            lines.append(f"culprit: {self.verdict()}")
        rows = [(describe(s.changes), _first(s.from_a), s.reproduces_b) for s in self.singles]
        rows.append((f"(all: {self.to_id})", _first(self.b_from_a), False))
        header = "knob alone"
        width = max(len(header), *(len(label) for label, _, _ in rows))
        lines += ["", f"  {header:<{width}}  first divergence from {self.from_id}"]
        for label, first, reproduces in rows:
            mark = f"  <- reproduces {self.to_id}" if reproduces else ""
            lines.append(f"  {label:<{width}}  {first}{mark}")
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
        allowance=allowance,
        tried=tried,
        seconds=time.perf_counter() - tic,
    )
