"""Trace agreement: bitwise by default, NaN equal to NaN only at the same step."""

from __future__ import annotations

import math

from mlx_parity.trace_compare import Divergence, first_divergence, same_loss

NAN = float("nan")


def test_same_loss_is_bitwise_at_zero_tolerance() -> None:
    assert same_loss(1.5, 1.5, 0.0)
    assert not same_loss(1.5, math.nextafter(1.5, 2.0), 0.0)
    assert same_loss(1.5, 1.5004, 1e-3) and not same_loss(1.5, 1.502, 1e-3)


def test_nan_matches_only_nan() -> None:
    assert same_loss(NAN, NAN, 0.0)
    assert not same_loss(NAN, 1.0, 0.0) and not same_loss(1.0, NAN, 10.0)


def test_first_divergence_names_step_and_size() -> None:
    assert first_divergence([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0) is None
    assert first_divergence([1.0, 2.5, 3.0], [1.0, 2.0, 9.0], 0.0) == Divergence(2, 0.5)
    assert first_divergence([1.0, NAN], [1.0, 2.0], 0.0) == Divergence(2, math.inf)
    # A shorter trace departs where it ends.
    assert first_divergence([1.0], [1.0, 2.0], 0.0) == Divergence(2, math.inf)
    assert Divergence(7, 0.0123).describe() == "step 7 by 0.0123"
