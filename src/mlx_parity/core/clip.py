"""The clip policy: what happens to the gradient between accumulation and the optimizer.

Two user-facing arguments (``max_grad_value``, ``max_grad_norm``) map to one effective policy.
The mapping is where trainers silently diverge: the motivating trainer treated an unset
``max_grad_value`` as "clip every element at ±1.0" (``legacy``), which was invisible in its
configuration and separated it from mlx-lm for many rounds. The resolver makes that explicit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import mlx.core as mx
from mlx.utils import tree_map, tree_reduce

ClipKind = Literal["none", "value", "global_norm", "leaf_norm"]
_KINDS = ("none", "value", "global_norm", "leaf_norm")
LEGACY_DEFAULT_VALUE = 1.0
# Added to norms before dividing so an all-zero gradient stays zero rather than NaN.
_NORM_EPS = 1e-6


@dataclass(frozen=True)
class ClipPolicy:
    kind: ClipKind = "none"
    limit: float | None = None

    @classmethod
    def parse(cls, spec: str) -> ClipPolicy:
        """Parse ``none``, ``value:v``, ``global_norm:v`` or ``leaf_norm:v`` (v > 0)."""
        kind, _, raw = spec.strip().partition(":")
        if kind not in _KINDS:
            raise ValueError(f"clip policy {spec!r}: kind must be one of {', '.join(_KINDS)}")
        if kind == "none":
            if raw:
                raise ValueError(f"clip policy {spec!r}: 'none' takes no limit")
            return cls()
        try:
            limit = float(raw)
        except ValueError:
            raise ValueError(f"clip policy {spec!r}: expected {kind}:<positive number>") from None
        if not math.isfinite(limit) or limit <= 0:
            raise ValueError(f"clip policy {spec!r}: the limit must be a positive number")
        return cls(kind, limit)  # type: ignore[arg-type]

    @property
    def spec(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.limit:g}"

    def apply(self, grads: dict) -> dict:
        """Return the clipped gradient tree (the input tree itself when the policy is ``none``)."""
        if self.kind == "none":
            return grads
        limit = self.limit
        if self.kind == "value":
            return tree_map(lambda g: mx.clip(g, -limit, limit), grads)
        if self.kind == "global_norm":
            scale = mx.minimum(limit / (global_norm(grads) + _NORM_EPS), 1.0)
            return tree_map(lambda g: (g * scale).astype(g.dtype), grads)
        return tree_map(
            lambda g: (g * mx.minimum(limit / (_l2(g) + _NORM_EPS), 1.0)).astype(g.dtype), grads
        )


def _l2(g: mx.array) -> mx.array:
    # Square in float32 so float16 gradients neither overflow nor lose the small entries.
    return mx.sqrt(mx.square(g.astype(mx.float32)).sum())


def global_norm(grads: dict) -> mx.array:
    """The float32 L2 norm over every gradient in the tree."""
    total = tree_reduce(
        lambda acc, g: acc + mx.square(g.astype(mx.float32)).sum(), grads, mx.array(0.0)
    )
    return mx.sqrt(total)


def resolve_clip(
    max_grad_value: float | None,
    max_grad_norm: float | None,
    semantics: Literal["explicit", "legacy"] = "explicit",
) -> ClipPolicy:
    """Map the user-facing clip arguments to the effective policy.

    | semantics | max_grad_value | max_grad_norm | policy           |
    |-----------|----------------|---------------|------------------|
    | explicit  | None or 0      | None or 0     | none             |
    | explicit  | v > 0          | None or 0     | value:v          |
    | either    | None or 0      | n > 0         | global_norm:n    |
    | legacy    | None           | None or 0     | value:1.0 (!)    |
    | legacy    | 0              | None or 0     | none             |
    | legacy    | v > 0          | None or 0     | value:v          |
    | either    | v > 0          | n > 0         | error: ambiguous |

    Under ``legacy`` an unset value limit silently means ±1.0, the behaviour the motivating
    trainer shipped; asking for a norm limit is explicit enough to switch that default off.
    """
    if semantics not in ("explicit", "legacy"):
        raise ValueError(f"clip_semantics must be 'explicit' or 'legacy', got {semantics!r}")
    for name, value in (("max_grad_value", max_grad_value), ("max_grad_norm", max_grad_norm)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be None or a number >= 0, got {value!r}")
    value_on = bool(max_grad_value)
    norm_on = bool(max_grad_norm)
    if value_on and norm_on:
        raise ValueError(
            "max_grad_value and max_grad_norm are both set; choose one clip policy "
            "(or set the effective policy directly with clip=...)"
        )
    if norm_on:
        return ClipPolicy("global_norm", float(max_grad_norm))
    if value_on:
        return ClipPolicy("value", float(max_grad_value))
    if semantics == "legacy" and max_grad_value is None:
        return ClipPolicy("value", LEGACY_DEFAULT_VALUE)
    return ClipPolicy()
