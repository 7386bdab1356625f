"""Each clip policy bounds the gradient as defined (``core/clip.py``); the policy's meaning and
the resolver's table for both semantics (``knobs.py``, no MLX)."""

from __future__ import annotations

import math

import mlx.core as mx
import pytest

from mlx_parity.core.clip import clip_gradients, global_norm
from mlx_parity.knobs import ClipPolicy, resolve_clip


def grads() -> dict:
    return {
        "a": mx.array([3.0, -4.0, 0.5]),
        "b": {"c": mx.array([[10.0, -0.2], [0.1, 2.0]])},
    }


def leaves(tree: dict) -> list[mx.array]:
    from mlx.utils import tree_flatten

    return [v for _, v in tree_flatten(tree)]


def test_value_policy_bounds_every_element() -> None:
    clipped = clip_gradients(ClipPolicy.parse("value:1.0"), grads())
    for leaf in leaves(clipped):
        assert mx.abs(leaf).max().item() <= 1.0
    assert clipped["a"].tolist() == [1.0, -1.0, 0.5]


def test_global_norm_policy_bounds_the_global_norm_and_keeps_direction() -> None:
    g = grads()
    before = global_norm(g).item()
    clipped = clip_gradients(ClipPolicy.parse("global_norm:2"), g)
    assert global_norm(clipped).item() == pytest.approx(2.0, rel=1e-5)
    ratio = clipped["a"][0].item() / g["a"][0].item()
    assert ratio == pytest.approx(2.0 / before, rel=1e-5)
    # Below the limit nothing changes.
    untouched = clip_gradients(ClipPolicy.parse("global_norm:1000"), g)
    assert untouched["b"]["c"].tolist() == g["b"]["c"].tolist()


def test_leaf_norm_policy_caps_each_tensor_separately() -> None:
    clipped = clip_gradients(ClipPolicy.parse("leaf_norm:1"), grads())
    for leaf in leaves(clipped):
        assert math.sqrt(mx.square(leaf).sum().item()) <= 1.0 + 1e-5
    small = clip_gradients(ClipPolicy.parse("leaf_norm:100"), grads())
    assert small["a"].tolist() == grads()["a"].tolist()


def test_global_norm_is_float32_for_float16_grads() -> None:
    g = {"x": mx.full((4096,), 300.0, dtype=mx.float16)}  # squares overflow float16
    assert math.isfinite(global_norm(g).item())


def test_none_policy_returns_the_same_tree() -> None:
    g = grads()
    assert clip_gradients(ClipPolicy.parse("none"), g) is g


@pytest.mark.parametrize(
    "spec", ["value", "value:-1", "value:0", "norm:1", "none:3", "global_norm:x"]
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="clip policy"):
        ClipPolicy.parse(spec)


@pytest.mark.parametrize(
    ("semantics", "value", "norm", "expected"),
    [
        ("explicit", None, None, "none"),
        ("explicit", 0.0, None, "none"),
        ("explicit", 0.5, None, "value:0.5"),
        ("explicit", None, 1.0, "global_norm:1"),
        ("explicit", 0.0, 0.0, "none"),
        ("legacy", None, None, "value:1"),
        ("legacy", 0.0, None, "none"),
        ("legacy", 0.5, None, "value:0.5"),
        ("legacy", None, 2.0, "global_norm:2"),
        ("legacy", 0.0, 2.0, "global_norm:2"),
        ("legacy", None, 0.0, "value:1"),
    ],
)
def test_resolver_table(semantics: str, value, norm, expected: str) -> None:
    assert resolve_clip(value, norm, semantics).spec == expected


@pytest.mark.parametrize("semantics", ["explicit", "legacy"])
def test_resolver_refuses_two_policies(semantics: str) -> None:
    with pytest.raises(ValueError, match="both set"):
        resolve_clip(1.0, 1.0, semantics)


def test_resolver_refuses_negative_limits() -> None:
    with pytest.raises(ValueError, match="max_grad_value"):
        resolve_clip(-1.0, None)
