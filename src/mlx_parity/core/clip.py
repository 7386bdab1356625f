"""Applying the clip policy: what happens to the gradient between accumulation and the
optimizer. The policy's meaning (and how user-facing arguments resolve to it) is in
``mlx_parity/knobs.py``."""

from __future__ import annotations

import mlx.core as mx
from mlx.utils import tree_map, tree_reduce

from ..knobs import ClipPolicy

# Added to norms before dividing so an all-zero gradient stays zero rather than NaN.
_NORM_EPS = 1e-6


def clip_gradients(policy: ClipPolicy, grads: dict) -> dict:
    """The clipped gradient tree (the input tree itself when the policy is ``none``)."""
    limit = policy.limit
    if policy.kind == "value":
        return tree_map(lambda g: mx.clip(g, -limit, limit), grads)
    if policy.kind == "global_norm":
        scale = mx.minimum(limit / (global_norm(grads) + _NORM_EPS), 1.0)
        return tree_map(lambda g: (g * scale).astype(g.dtype), grads)
    if policy.kind == "leaf_norm":
        return tree_map(
            lambda g: (g * mx.minimum(limit / (_l2(g) + _NORM_EPS), 1.0)).astype(g.dtype), grads
        )
    return grads


def _l2(g: mx.array) -> mx.array:
    # Square in float32 so float16 gradients neither overflow nor lose the small entries.
    return mx.sqrt(mx.square(g.astype(mx.float32)).sum())


def global_norm(grads: dict) -> mx.array:
    """The float32 L2 norm over every gradient in the tree."""
    total = tree_reduce(
        lambda acc, g: acc + mx.square(g.astype(mx.float32)).sum(), grads, mx.array(0.0)
    )
    return mx.sqrt(total)
