"""Trace agreement: bitwise by default, a non-finite loss equal only to the same value."""

from __future__ import annotations

import math

from mlx_parity.traces import compare_traces, first_divergence, same_loss

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
    assert (found.step, found.size, found.where) == (2, 0.5, "step 2 by 0.5")
    assert found.describe() == "diverges at step 2 by 0.5"
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
