"""Trace agreement: bitwise by default, a non-finite loss equal only to the same value."""

from __future__ import annotations

import math

import pytest

from mlx_parity.traces import (
    STRUCTURE_WEIGHT,
    Allowance,
    compare_traces,
    distance,
    first_divergence,
    format_ratio,
    same_loss,
    simple_scale,
)

NAN = float("nan")
INF = float("inf")


def test_same_loss_is_bitwise_at_zero_tolerance() -> None:
    assert same_loss(1.5, 1.5, 0.0)
    assert not same_loss(1.5, math.nextafter(1.5, 2.0), 0.0)
    assert same_loss(1.5, 1.5004, 1e-3) and not same_loss(1.5, 1.502, 1e-3)


def test_nonfinite_matches_only_the_same_value_at_any_tolerance() -> None:
    for tolerance in (0.0, 1e-3):
        assert same_loss(NAN, NAN, tolerance) and same_loss(INF, INF, tolerance)
        assert not same_loss(NAN, 1.0, tolerance) and not same_loss(1.0, NAN, tolerance)
        assert not same_loss(INF, -INF, tolerance) and not same_loss(INF, 1e300, tolerance)


def test_first_divergence_names_step_and_size() -> None:
    assert first_divergence([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) is None
    found = first_divergence([1.0, 2.5, 3.0], [1.0, 2.0, 9.0])
    assert (found.step, found.size, found.where) == (2, 0.5, "step 2: loss by 0.5")
    assert found.describe() == "diverges at step 2: loss by 0.5"
    nonfinite = first_divergence([1.0, NAN], [1.0, 2.0])
    assert (nonfinite.step, nonfinite.size) == (2, None)
    assert nonfinite.where == "step 2: loss nan vs 2"


def test_a_length_mismatch_diverges_where_the_shorter_trace_ends() -> None:
    for tolerance in (0.0, 1e-3):
        found = compare_traces([1.0], [1.0, 2.0], tolerance)
        assert (found.verdict, found.step, found.size) == ("diverges", 2, None)
        assert found.where == "step 2: trace length 1 vs 2 steps"


def test_verdicts_and_max_abs() -> None:
    identical = compare_traces([1.0, 2.0], [1.0, 2.0])
    assert (identical.verdict, identical.max_abs) == ("identical", 0.0)
    assert identical.describe() == "identical over 2 steps"
    close = compare_traces([1.0, 2.0005], [1.0, 2.0], 1e-3)
    assert close.verdict == "close" and math.isclose(close.max_abs, 0.0005, rel_tol=1e-6)
    assert close.describe() == "close over 2 steps: max |Δloss| 0.0005 ≤ 0.001"
    diverges = compare_traces([1.0, 2.0005, 5.0], [1.0, 2.0, 3.0], 1e-3)
    assert (diverges.verdict, diverges.step, diverges.max_abs) == ("diverges", 3, 2.0)
    assert compare_traces([], []).verdict == "unavailable"


def rows_of(losses, shapes=None, norms=None) -> list[dict]:
    return [
        {
            "step": i + 1,
            "loss": loss,
            "grad_norm": (norms or {}).get(i + 1, 2.0),
            "ntoks": 10,
            "input_shape": (shapes or {}).get(i + 1, (2, 33)),
            "lr": 1e-3,
        }
        for i, loss in enumerate(losses)
    ]


def test_distance_is_the_mean_disagreement_in_allowances() -> None:
    allowance = Allowance.of(1e-3)
    target = rows_of([1.0, 2.0, 3.0, 4.0])
    assert distance(target, target, allowance) == 0.0
    # One step 9 allowances off: log10(1 + 9) = 1, over 4 steps.
    assert distance(rows_of([1.0, 2.009, 3.0, 4.0]), target, allowance) == pytest.approx(0.25)
    # A batch of another shape counts STRUCTURE_WEIGHT whatever its loss.
    wider = rows_of([1.0, 2.0, 3.0, 4.0], shapes={3: (2, 65)})
    assert distance(wider, target, allowance) == pytest.approx(STRUCTURE_WEIGHT / 4)
    # So does a step one trace lacks, and a NaN where the other is finite.
    assert distance(rows_of([1.0, 2.0, 3.0]), target, allowance) == STRUCTURE_WEIGHT / 4
    assert distance(rows_of([1.0, NAN, 3.0, 4.0]), target, allowance) == STRUCTURE_WEIGHT / 4
    # The gradient norm, relative, in the allowance's own units: 2.0 vs 2.0·(1 + 9e-3).
    norms = rows_of([1.0, 2.0, 3.0, 4.0], norms={1: 2.0 * (1 + 9e-3)})
    assert distance(norms, target, allowance) == pytest.approx(0.25)


def test_a_late_large_departure_is_farther_than_an_early_small_one() -> None:
    # What "closest" must get right: by first departure step alone, the late one would win.
    allowance = Allowance.of(1e-6)
    target = rows_of([5.0] * 8)
    early_small = rows_of([5.0 + 5e-6] * 8)
    late_large = rows_of([5.0] * 4 + [5.1] * 4)
    assert distance(early_small, target, allowance) < distance(late_large, target, allowance)


@pytest.mark.parametrize(
    ("ratio", "scale", "text"),
    [
        (0.5, 0.5, "0.5× (gradients scaled by 1/2)"),
        (2.0, 2.0, "2× (gradients scaled by 2)"),
        (0.125, 0.125, "0.125× (gradients scaled by 1/8)"),
        (3.00001, 3.0, "3× (gradients scaled by 3)"),
        (0.84, None, "0.84×"),
        (0.999, None, "0.999×"),  # near 1: the digits that show it, no trailing zeros
        (1.00312, None, "1.00312×"),
        (1 + 5.2e-7, 1.0, "1.00000052×"),  # just past the float32 allowance, never "1×"
        (0.0, None, None),
        (math.inf, None, None),
    ],
)
def test_a_gradient_ratio_is_read_as_a_scale_only_when_simple(ratio, scale, text) -> None:
    assert simple_scale(ratio) == scale
    if text is not None:
        assert format_ratio(ratio) == text
