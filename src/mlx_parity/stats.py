"""Honest outcome statistics for a probe against the baseline.

A round runs a handful of seeds, so raw pass rates are noisy: 10/15 vs 8/15 looks like a
difference and is not one. Everything here therefore compares probe and baseline *seed by seed*
(a paired design), tests the discordant seeds with the exact McNemar test, corrects across
probes with Holm, and says up front how large a gap the seeds could have revealed at all. Pure
functions over plain values; the exact distributions come from scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

# What a report may say when a test finds nothing: only that nothing was detected (never
# "identical" or "within noise", which a small sample cannot establish).
NO_DIFFERENCE = "no difference detected"


def _check_probability(name: str, value: float, *, open_interval: bool = False) -> None:
    # NaN fails every comparison, so it is refused here too.
    ok = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not ok:
        bounds = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")


# The exact tests below are pure functions of a few small integers; a collector evaluates the
# same few arguments for hundreds of probes, so each is computed once.
@functools.lru_cache(maxsize=4096)
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate of ``successes`` out of ``n`` seeds; ``(0.0, 1.0)``
    when ``n == 0`` (nothing is known)."""
    _check_probability("confidence", confidence, open_interval=True)
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(interval.low), float(interval.high))


@functools.lru_cache(maxsize=4096)
def exact_mcnemar_p(passes_lost: int, passes_gained: int) -> float:
    """Two-sided exact McNemar p-value from the discordant seeds alone: under "probe behaves
    like baseline" each goes either way with p = 0.5 (a binomial test); with none, p = 1.0."""
    if passes_lost < 0 or passes_gained < 0:
        raise ValueError("discordant counts must be non-negative")
    discordant = passes_lost + passes_gained
    if discordant == 0:
        return 1.0
    return float(binomtest(passes_gained, discordant, 0.5).pvalue)


def _rate(successes: int, n: int) -> float:
    # 0 of 0 is reported as 0.0; the (0, 1) interval and n == 0 say that nothing is known.
    return successes / n if n else 0.0


@dataclass(frozen=True)
class PairedOutcome:
    """Probe vs baseline pass/fail over the seeds both ran. McNemar's ``b`` is ``passes_lost``
    (baseline passes, probe fails), ``c`` is ``passes_gained``. Every field is a plain value, so
    ``dataclasses.asdict`` gives a complete JSON-ready record."""

    seeds: tuple[int, ...]
    seeds_only_in_baseline: tuple[int, ...]
    seeds_only_in_probe: tuple[int, ...]
    agreements: int
    agreement_rate: float
    lost_seeds: tuple[int, ...]
    gained_seeds: tuple[int, ...]
    passes_lost: int
    passes_gained: int
    mcnemar_p: float
    baseline_passes: int
    probe_passes: int
    baseline_rate: float
    probe_rate: float
    baseline_ci: tuple[float, float]
    probe_ci: tuple[float, float]

    @property
    def n(self) -> int:
        return len(self.seeds)


def paired_outcome(baseline: Mapping[int, bool], probe: Mapping[int, bool]) -> PairedOutcome:
    """Compare pass flags seed by seed, over the seeds present in both: an unpaired seed carries
    no paired information, and treating it as a failure would invent discordance. The unpaired
    seeds are reported so a missing artifact stays visible."""
    shared = sorted(baseline.keys() & probe.keys())
    lost = tuple(s for s in shared if baseline[s] and not probe[s])
    gained = tuple(s for s in shared if probe[s] and not baseline[s])
    n = len(shared)
    agreements = n - len(lost) - len(gained)
    baseline_passes = sum(1 for s in shared if baseline[s])
    probe_passes = sum(1 for s in shared if probe[s])
    return PairedOutcome(
        seeds=tuple(shared),
        seeds_only_in_baseline=tuple(sorted(baseline.keys() - probe.keys())),
        seeds_only_in_probe=tuple(sorted(probe.keys() - baseline.keys())),
        agreements=agreements,
        agreement_rate=_rate(agreements, n),
        lost_seeds=lost,
        gained_seeds=gained,
        passes_lost=len(lost),
        passes_gained=len(gained),
        mcnemar_p=exact_mcnemar_p(len(lost), len(gained)),
        baseline_passes=baseline_passes,
        probe_passes=probe_passes,
        baseline_rate=_rate(baseline_passes, n),
        probe_rate=_rate(probe_passes, n),
        baseline_ci=wilson_interval(baseline_passes, n),
        probe_ci=wilson_interval(probe_passes, n),
    )


def holm_adjust(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni step-down adjusted p-values, keyed like the input: comparing one with
    alpha is running Holm's procedure at alpha. The i-th smallest of m (i from 0) is scaled by
    (m - i) and capped at 1; a running maximum keeps a larger raw p from a smaller adjusted p."""
    for name, p in pvalues.items():
        _check_probability(f"p-value of {name!r}", p)
    m = len(pvalues)
    adjusted: dict[str, float] = {}
    running_max = 0.0
    for i, (name, p) in enumerate(sorted(pvalues.items(), key=lambda item: item[1])):
        running_max = max(running_max, min(1.0, (m - i) * p))
        adjusted[name] = running_max
    return {name: adjusted[name] for name in pvalues}  # in the caller's key order


@functools.lru_cache(maxsize=1024)
def minimal_detectable_discordance(n_seeds: int, alpha: float = 0.05) -> int | None:
    """The fewest discordant seeds, all flipping the same way, whose exact McNemar p is < alpha
    (2 * 0.5**k for k of them, whatever n is); ``None`` when it does not fit into n seeds
    (n = 5 at alpha = 0.05: 2 * 0.5**5 = 0.0625)."""
    _check_probability("alpha", alpha, open_interval=True)
    if n_seeds < 0:
        raise ValueError(f"n_seeds must be >= 0, got {n_seeds}")
    return next((k for k in range(1, n_seeds + 1) if exact_mcnemar_p(k, 0) < alpha), None)


@functools.lru_cache(maxsize=1024)
def detectable_gap(
    n_seeds: int, baseline_rate: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true pass-rate gap that n paired seeds detect with the given power.

    The model is exact and the most favourable for detection: each seed independently flips
    against the baseline with probability ``gap`` and none flips the other way, so the discordant
    count is Binomial(n, gap), the test rejects once it reaches
    :func:`minimal_detectable_discordance`, and power ``binom.sf(k - 1, n, gap)`` is solved for
    exactly. Real probes also flip some seeds back, which only adds noise: read the gap as
    "anything smaller was invisible". One-way flips cannot exceed the room the baseline leaves
    (its pass rate for a drop, its fail rate for a rise); ``math.inf`` when even the larger room
    is too small or no outcome reaches p < alpha. Under Holm with m probes, pass ``alpha / m``
    for the worst case. More seeds never give a larger gap.
    """
    _check_probability("baseline_rate", baseline_rate)
    _check_probability("power", power, open_interval=True)
    needed = minimal_detectable_discordance(n_seeds, alpha)
    if needed is None:
        return math.inf

    def power_shortfall(gap: float) -> float:
        return float(binom.sf(needed - 1, n_seeds, gap)) - power

    # power_shortfall(0) = -power < 0 and power_shortfall(1) = 1 - power > 0 since needed <= n.
    gap = brentq(power_shortfall, 0.0, 1.0, xtol=1e-12)
    room = max(baseline_rate, 1.0 - baseline_rate)
    return gap if gap <= room else math.inf


@functools.lru_cache(maxsize=256)
def _rejection_tails(n_seeds: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """For each discordant count D = 0..n, the largest count t_D of seeds flipping the rarer
    way at which the two-sided exact McNemar p is still below alpha (−1: never)."""
    discordant = np.arange(n_seeds + 1)
    tail = np.full(n_seeds + 1, -1)
    for d in discordant[1:]:
        p_values = np.minimum(1.0, 2 * binom.cdf(np.arange(d // 2 + 1), d, 0.5))
        below = np.nonzero(p_values < alpha)[0]
        tail[d] = below[-1] if below.size else -1
    return discordant, tail


@functools.lru_cache(maxsize=1024)
def independent_flips_gap(
    n_seeds: int, baseline_rate: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest pass-rate gap n paired seeds detect with the given power when each seed's probe
    outcome is independent of its baseline outcome (the pessimistic model beside
    :func:`detectable_gap`).

    With rates p0 and p1, a seed is lost with probability p0(1 − p1) and gained with (1 − p0)p1;
    the discordant count D is Binomial(n, lost + gained) and, given D, the lost ones
    Binomial(D, lost / (lost + gained)). Power, the exact probability that the McNemar p falls
    below alpha, is bisected over drops and rises within the baseline's room; ``math.inf`` when
    no gap reaches it.
    """
    _check_probability("baseline_rate", baseline_rate)
    _check_probability("power", power, open_interval=True)
    if minimal_detectable_discordance(n_seeds, alpha) is None:
        return math.inf
    discordant, tail = _rejection_tails(n_seeds, alpha)

    def power_at(p1: float) -> float:
        lost, gained = baseline_rate * (1 - p1), (1 - baseline_rate) * p1
        if lost + gained == 0:
            return 0.0
        share = lost / (lost + gained)
        # Reject when the lost count is in either tail: at most t_D, or at least D − t_D.
        rejected = binom.cdf(tail, discordant, share) + binom.sf(
            discordant - tail - 1, discordant, share
        )
        return float((binom.pmf(discordant, n_seeds, lost + gained) * rejected).sum())

    best = math.inf
    for direction, room in ((-1, baseline_rate), (1, 1 - baseline_rate)):
        if room <= 0 or power_at(baseline_rate + direction * room) < power:
            continue
        low, high = 0.0, room
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (
                (low, mid) if power_at(baseline_rate + direction * mid) >= power else (mid, high)
            )
        best = min(best, high)
    return best


def whole_percent(rate: float) -> int:
    """``rate`` in whole percent, a half rounded up as people do (5/8 is 63, where Python's
    round-half-even gives 62); the 1e-9 absorbs k/n landing a hair below a half in binary."""
    return math.floor(rate * 100 + 0.5 + 1e-9)


def percent(rate: float) -> str:
    """ "63%": every percentage a report shows to people."""
    return f"{whole_percent(rate)}%"


def _points(rate: float) -> int:
    # Round up so the sentence never promises a smaller detectable gap than the model gives.
    return math.ceil(rate * 100 - 1e-9)


def best_case_floor(n_seeds: int, alpha: float = 0.05) -> str:
    """``≥ 47 points (≥ 7 of 15 seeds flipping the same way)``, or why no gap can be seen."""
    needed = minimal_detectable_discordance(n_seeds, alpha)
    if needed is None:
        return f"no gap at all (even all {n_seeds} flipping one way gives p ≥ {alpha:g})"
    return f"≥ {_points(needed / n_seeds)} points (≥ {needed} of {n_seeds} seeds flipping one way)"


def describe_detectability(
    n_seeds: int, baseline_rate: float, alpha: float = 0.05, power: float = 0.8
) -> str:
    """One plain-English sentence on what gap n seeds could tell from seed noise: the best case
    (every flip one way) and, beside it, the gap needed when seeds flip independently."""
    needed = minimal_detectable_discordance(n_seeds, alpha)
    if needed is None:
        best_p = exact_mcnemar_p(n_seeds, 0)
        return (
            f"with {n_seeds} seeds, no gap could be detected: even all {n_seeds} flipping the "
            f"same way gives p = {best_p:.4g} ≥ {alpha:g}"
        )
    best = detectable_gap(n_seeds, baseline_rate, alpha, power)
    independent = independent_flips_gap(n_seeds, baseline_rate, alpha, power)
    caught = f"caught {percent(power)} of the time"
    if math.isinf(best):
        # A gap that could be detected in principle, yet never reliably: the conclusion leads,
        # so "detectable" is not read beside "never caught" as a contradiction.
        return (
            f"with {n_seeds} seeds, too few to catch any real gap {percent(power)} of the time, "
            f"even if every flip goes one way: detection takes a gap of "
            f"{best_case_floor(n_seeds, alpha)}, and the largest gap the baseline's pass rate "
            "leaves room for falls short"
        )
    if math.isinf(independent):
        other = f"and no gap is {caught} if seeds flip independently"
    else:
        other = f"≈ {_points(independent)} points if seeds flip independently"
    return (
        f"with {n_seeds} seeds, at best a gap of {best_case_floor(n_seeds, alpha)} is detectable; "
        f"to be {caught} a real gap must be ≈ {_points(best)} points in the best case (every "
        f"flip one way), {other}"
    )


def verdict(outcome: PairedOutcome, adjusted_p: float, alpha: float = 0.05) -> str:
    """The outcome line of a report, decided by the multiplicity-adjusted p alone, never by raw
    pass rates: 10/15 vs 8/15 with 3 seeds lost and 1 gained has p = 0.625, no difference
    detected (which is not "no difference")."""
    _check_probability("adjusted_p", adjusted_p)
    _check_probability("alpha", alpha, open_interval=True)
    if adjusted_p < outcome.mcnemar_p - 1e-12:
        # Holm never lowers a p-value, so this is a raw p from somewhere else.
        raise ValueError(
            f"adjusted_p={adjusted_p!r} is below the raw McNemar p={outcome.mcnemar_p!r}"
        )
    if outcome.n == 0:
        return "no shared seeds to compare"
    if adjusted_p >= alpha:
        return f"{NO_DIFFERENCE} (p={adjusted_p:.3g})"
    return f"differs from baseline (p={adjusted_p:.3g})"
