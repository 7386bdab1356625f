"""Each statistic against values computed by hand or from a closed form."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random

import pytest
from scipy.stats import binom, norm

from mlx_parity.stats import (
    NO_DIFFERENCE,
    PairedOutcome,
    describe_detectability,
    detectable_gap,
    exact_mcnemar_p,
    holm_adjust,
    independent_flips_gap,
    minimal_detectable_discordance,
    paired_outcome,
    percent,
    verdict,
    wilson_interval,
)

# The seeds of the motivating rounds (matrix/rounds/motivating.toml).
SEEDS = (1, 7, 42, 123, 456, 789, 999, 1234, 3407, 5678, 9012, 12345, 22222, 31415, 65535)


def closed_form_wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    # Wilson (1927): centre (k + z²/2) / (n + z²), half-width z/(n + z²) · sqrt(k(n-k)/n + z²/4).
    z = norm.ppf(0.5 + confidence / 2)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return (centre - half, centre + half)


def outcomes(passing: set[int], seeds: tuple[int, ...] = SEEDS) -> dict[int, bool]:
    return {seed: seed in passing for seed in seeds}


# The motivating example: baseline passes 10 of 15, the probe 8; they disagree on 4 seeds,
# 3 lost (baseline pass, probe fail) and 1 gained.
BASELINE_10 = outcomes(set(SEEDS[:10]))
PROBE_8 = outcomes(set(SEEDS[:7]) | {SEEDS[10]})


# --- Wilson -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(10, 15, (0.417, 0.848)), (8, 15, (0.301, 0.752))],
)
def test_wilson_known_values(k: int, n: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(k, n)
    assert (round(low, 3), round(high, 3)) == expected
    assert (low, high) == pytest.approx(closed_form_wilson(k, n), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 15), (15, 15), (3, 7), (50, 100)])
def test_wilson_matches_closed_form(k: int, n: int) -> None:
    assert wilson_interval(k, n) == pytest.approx(closed_form_wilson(k, n), abs=1e-12)
    assert wilson_interval(k, n, 0.9) == pytest.approx(closed_form_wilson(k, n, 0.9), abs=1e-12)


def test_wilson_all_pass_reaches_one() -> None:
    z2 = norm.ppf(0.975) ** 2
    low, high = wilson_interval(15, 15)
    assert high == pytest.approx(1.0)
    assert low == pytest.approx(15 / (15 + z2))  # 0.796
    assert round(low, 3) == 0.796


def test_wilson_returns_python_floats() -> None:
    assert all(type(bound) is float for bound in wilson_interval(10, 15))


def test_wilson_no_seeds_knows_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n", "confidence"), [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0)])
def test_wilson_rejects_bad_input(k: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, confidence)


# --- exact McNemar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lost", "gained", "p"),
    [
        (3, 1, 0.625),  # 2 · (1 + 4) / 16
        (1, 3, 0.625),  # symmetric
        (6, 0, 0.03125),  # 2 · 0.5**6
        (0, 6, 0.03125),
        (5, 0, 0.0625),  # 2 · 0.5**5: one short of p < 0.05
        (0, 0, 1.0),
        (2, 2, 1.0),
        (10, 2, 0.03857421875),  # 2 · (1 + 12 + 66) / 4096 = 158/4096
    ],
)
def test_exact_mcnemar_known_values(lost: int, gained: int, p: float) -> None:
    assert exact_mcnemar_p(lost, gained) == pytest.approx(p, abs=1e-15)


# --- paired outcome ------------------------------------------------------------------------


def test_motivating_example_shows_no_detectable_difference() -> None:
    outcome = paired_outcome(BASELINE_10, PROBE_8)
    assert outcome.n == 15
    assert (outcome.baseline_passes, outcome.probe_passes) == (10, 8)
    assert (outcome.passes_lost, outcome.passes_gained) == (3, 1)
    assert outcome.lost_seeds == (1234, 3407, 5678)
    assert outcome.gained_seeds == (9012,)
    assert outcome.agreements == 11
    assert outcome.agreement_rate == pytest.approx(11 / 15)
    assert outcome.baseline_rate == pytest.approx(10 / 15)
    assert outcome.probe_rate == pytest.approx(8 / 15)
    assert outcome.mcnemar_p == pytest.approx(0.625)
    assert [round(x, 3) for x in outcome.baseline_ci] == [0.417, 0.848]
    assert [round(x, 3) for x in outcome.probe_ci] == [0.301, 0.752]
    # Even alone (no correction), and more so after Holm across probes.
    assert verdict(outcome, outcome.mcnemar_p) == f"{NO_DIFFERENCE} (p=0.625)"
    adjusted = holm_adjust({"probe": outcome.mcnemar_p, "other": 0.2})
    assert verdict(outcome, adjusted["probe"]) == "no difference detected (p=0.625)"


def test_six_one_way_flips_differ() -> None:
    probe = outcomes(set(SEEDS[:4]))  # loses seeds 5..10 of the baseline's 10
    outcome = paired_outcome(BASELINE_10, probe)
    assert (outcome.passes_lost, outcome.passes_gained) == (6, 0)
    assert outcome.mcnemar_p == pytest.approx(0.03125)
    assert verdict(outcome, outcome.mcnemar_p) == "differs from baseline (p=0.0312)"
    # The same evidence among three probes no longer survives Holm.
    adjusted = holm_adjust({"a": outcome.mcnemar_p, "b": 0.5, "c": 0.9})
    assert adjusted["a"] == pytest.approx(0.09375)
    assert verdict(outcome, adjusted["a"]).startswith(NO_DIFFERENCE)


def test_same_rates_different_seeds_are_still_paired() -> None:
    # Equal pass rates can hide disagreement; the pairing reports it.
    probe = outcomes(set(SEEDS[5:]))
    outcome = paired_outcome(BASELINE_10, probe)
    assert outcome.baseline_rate == outcome.probe_rate
    assert (outcome.passes_lost, outcome.passes_gained, outcome.agreements) == (5, 5, 5)
    assert outcome.mcnemar_p == 1.0


def test_all_pass() -> None:
    everything = outcomes(set(SEEDS))
    outcome = paired_outcome(everything, everything)
    assert (outcome.passes_lost, outcome.passes_gained, outcome.agreements) == (0, 0, 15)
    assert outcome.agreement_rate == 1.0
    assert outcome.mcnemar_p == 1.0
    assert outcome.baseline_ci == outcome.probe_ci == wilson_interval(15, 15)
    assert verdict(outcome, 1.0).startswith(NO_DIFFERENCE)


def test_mismatched_seeds_compare_only_the_intersection() -> None:
    baseline = {1: True, 7: True, 42: False, 123: True}
    probe = {7: False, 42: True, 123: True, 456: False, 789: True}
    outcome = paired_outcome(baseline, probe)
    assert outcome.seeds == (7, 42, 123)
    assert outcome.seeds_only_in_baseline == (1,)
    assert outcome.seeds_only_in_probe == (456, 789)
    assert (outcome.passes_lost, outcome.passes_gained, outcome.agreements) == (1, 1, 1)
    assert (outcome.baseline_passes, outcome.probe_passes) == (2, 2)
    assert outcome.baseline_ci == wilson_interval(2, 3)


def test_no_shared_seeds() -> None:
    outcome = paired_outcome({1: True}, {2: False})
    assert outcome.n == 0
    assert outcome.seeds_only_in_baseline == (1,)
    assert outcome.seeds_only_in_probe == (2,)
    assert outcome.mcnemar_p == 1.0
    assert outcome.baseline_ci == outcome.probe_ci == (0.0, 1.0)
    assert outcome.agreement_rate == outcome.baseline_rate == 0.0
    assert verdict(outcome, 1.0) == "no shared seeds to compare"


def test_paired_outcome_is_frozen_and_serialisable() -> None:
    outcome = paired_outcome(BASELINE_10, PROBE_8)
    assert isinstance(outcome, PairedOutcome)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.passes_lost = 0  # type: ignore[misc]
    record = dataclasses.asdict(outcome)
    assert record["passes_lost"] == 3 and record["mcnemar_p"] == pytest.approx(0.625)


# --- Holm ----------------------------------------------------------------------------------


def test_holm_known_values() -> None:
    # Sorted: 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → raised to 0.06 by the running max.
    adjusted = holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03})
    assert list(adjusted) == ["a", "b", "c"]  # caller's key order kept
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


def test_holm_four_values() -> None:
    # 0.01·4, 0.02·3, 0.03·2, 0.04·1 → 0.04, 0.06, 0.06, max(0.06, 0.04).
    adjusted = holm_adjust({"w": 0.04, "x": 0.01, "y": 0.03, "z": 0.02})
    assert adjusted == pytest.approx({"w": 0.06, "x": 0.04, "y": 0.06, "z": 0.06})


def test_holm_caps_at_one() -> None:
    assert holm_adjust({"a": 0.5, "b": 0.6}) == {"a": 1.0, "b": 1.0}
    assert holm_adjust({"a": 0.3, "b": 1.0, "c": 0.2}) == pytest.approx(
        {"a": 0.6, "b": 1.0, "c": 0.6}
    )


def test_holm_trivial_cases() -> None:
    assert holm_adjust({}) == {}
    assert holm_adjust({"only": 0.03}) == {"only": 0.03}
    assert holm_adjust({"a": 0.02, "b": 0.02}) == {"a": 0.04, "b": 0.04}


def test_holm_rejects_non_probabilities() -> None:
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            holm_adjust({"a": 0.1, "b": bad})


def holm_rejects(pvalues: dict[str, float], alpha: float) -> set[str]:
    # Holm's procedure as first stated: walk up the sorted p-values, reject while
    # p_(i) <= alpha / (m - i), stop at the first that fails.
    rejected: set[str] = set()
    m = len(pvalues)
    for i, (name, p) in enumerate(sorted(pvalues.items(), key=lambda item: item[1])):
        if p > alpha / (m - i):
            break
        rejected.add(name)
    return rejected


def test_holm_adjusted_values_reproduce_the_procedure() -> None:
    rng = random.Random(3407)
    for _ in range(300):
        m = rng.randint(1, 8)
        pvalues = {f"p{i}": rng.choice([rng.random(), rng.random() / 50]) for i in range(m)}
        adjusted = holm_adjust(pvalues)
        ranked = sorted(pvalues, key=pvalues.__getitem__)
        # Never below the raw p, never above 1, same order as the raw p-values.
        assert all(pvalues[k] <= adjusted[k] <= 1.0 for k in pvalues)
        assert all(adjusted[a] <= adjusted[b] for a, b in itertools.pairwise(ranked))
        for alpha in (0.01, 0.05, 0.1):
            assert {k for k, p in adjusted.items() if p <= alpha} == holm_rejects(pvalues, alpha)


# --- detectability -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "alpha", "needed"),
    [(15, 0.05, 6), (6, 0.05, 6), (5, 0.05, None), (0, 0.05, None), (15, 0.01, 8), (15, 0.1, 5)],
)
def test_minimal_detectable_discordance(n: int, alpha: float, needed: int | None) -> None:
    assert minimal_detectable_discordance(n, alpha) == needed
    if needed is not None:
        assert exact_mcnemar_p(needed, 0) < alpha <= exact_mcnemar_p(needed - 1, 0)


def test_detectable_gap_pinned_value() -> None:
    gap = detectable_gap(15, 10 / 15)
    assert gap == pytest.approx(0.47559088, abs=1e-6)
    # By construction: 6 or more of 15 seeds flip with probability 0.8 at this gap.
    assert binom.sf(5, 15, gap) == pytest.approx(0.8, abs=1e-9)
    assert detectable_gap(15, 10 / 15) > 6 / 15  # never below the deterministic floor here


def test_detectable_gap_shrinks_with_more_seeds() -> None:
    gaps = [detectable_gap(n, 0.9) for n in range(0, 201)]
    assert all(math.isinf(g) for g in gaps[:6])
    assert all(a > b for a, b in itertools.pairwise(gaps[6:]))
    assert gaps[30] == pytest.approx(0.2507476, abs=1e-6)
    assert gaps[100] == pytest.approx(0.0779111, abs=1e-6)


def test_detectable_gap_respects_the_room_the_baseline_leaves() -> None:
    # With 10 seeds the gap is 0.673; a 50% baseline leaves at most 50 points either way.
    assert detectable_gap(10, 1.0) == pytest.approx(0.6731719, abs=1e-6)
    assert math.isinf(detectable_gap(10, 0.5))
    assert detectable_gap(10, 0.2) == detectable_gap(10, 0.8)


def test_detectable_gap_needs_more_with_stricter_alpha_or_power() -> None:
    base = detectable_gap(30, 0.8)
    assert detectable_gap(30, 0.8, alpha=0.01) > base
    assert detectable_gap(30, 0.8, power=0.9) > base


def test_describe_detectability() -> None:
    assert describe_detectability(15, 10 / 15) == (
        "with 15 seeds, at best a gap of ≥ 40 points (≥ 6 of 15 seeds flipping one way) is "
        "detectable; to be caught 80% of the time a real gap must be ≈ 48 points in the best "
        "case (every flip one way), ≈ 56 points if seeds flip independently"
    )
    assert describe_detectability(5, 0.6) == (
        "with 5 seeds, no gap could be detected: "
        "even all 5 flipping the same way gives p = 0.0625 ≥ 0.05"
    )
    # Too few seeds for the power wanted: the conclusion first, never "detectable" beside it.
    # (detectable_gap(10, 0.5) is inf: the 0.673 gap needed exceeds the 0.5 room.)
    assert describe_detectability(10, 0.5) == (
        "with 10 seeds, too few to catch any real gap 80% of the time, even if every flip goes "
        "one way: detection takes a gap of ≥ 60 points (≥ 6 of 10 seeds flipping one way), and "
        "the largest gap the baseline's pass rate leaves room for falls short"
    )


@pytest.mark.parametrize(("rate", "text"), [(5 / 8, "63%"), (29 / 200, "15%"), (1 / 3, "33%")])
def test_percentages_round_a_half_up(rate: float, text: str) -> None:
    # Python's round-half-even (and "{:.0%}") gives 62% for 5/8; 29/200 is 14.4999… in binary.
    assert percent(rate) == text


def independent_power(n: int, p0: float, p1: float, alpha: float = 0.05) -> float:
    """Power of the two-sided exact McNemar test by enumerating every (lost, gained, same)
    count of n seeds whose probe and baseline outcomes are independent (a trinomial)."""
    lost, gained = p0 * (1 - p1), (1 - p0) * p1
    same = 1 - lost - gained
    total = 0.0
    for b in range(n + 1):
        for c in range(n - b + 1):
            d = b + c
            p_value = min(1.0, 2 * sum(math.comb(d, k) for k in range(min(b, c) + 1)) / 2**d)
            if d and p_value < alpha:
                ways = math.comb(n, b) * math.comb(n - b, c)
                total += ways * lost**b * gained**c * same ** (n - d)
    return total


@pytest.mark.parametrize(("n", "p0"), [(15, 10 / 15), (20, 0.9), (12, 0.3)])
def test_independent_flips_gap_against_enumeration(n: int, p0: float) -> None:
    gap = independent_flips_gap(n, p0)
    assert gap >= detectable_gap(n, p0)  # never better than the best case
    direction = -1 if independent_power(n, p0, p0 - gap) >= 0.8 else 1
    assert independent_power(n, p0, p0 + direction * gap) >= 0.8 - 1e-9
    # A slightly smaller gap in either direction falls short of the power.
    for sign in (-1, 1):
        other = p0 + sign * (gap - 0.01)
        if 0 <= other <= 1:
            assert independent_power(n, p0, other) < 0.8


# --- verdict -------------------------------------------------------------------------------


def test_verdict_threshold_is_adjusted_p_against_alpha() -> None:
    outcome = paired_outcome(BASELINE_10, outcomes(set()))  # b = 10, c = 0
    assert outcome.mcnemar_p == pytest.approx(2 * 0.5**10)
    assert verdict(outcome, 0.05).startswith(NO_DIFFERENCE)  # p >= alpha is noise
    assert verdict(outcome, 0.0499) == "differs from baseline (p=0.0499)"
    assert verdict(outcome, 0.02, alpha=0.01).startswith(NO_DIFFERENCE)


def test_verdict_refuses_an_adjusted_p_below_the_raw_one() -> None:
    outcome = paired_outcome(BASELINE_10, PROBE_8)
    with pytest.raises(ValueError, match="below the raw McNemar p"):
        verdict(outcome, 0.01)
