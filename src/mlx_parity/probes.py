"""A probe: a named set of knob values plus the trainer that runs them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .artifact import PROBE_ID_PATTERN
from .knobs import Knobs, apply

# What a probe's traces should be against the baseline's: "identical" (bit for bit),
# "equivalent" (bitwise or inside the round's noise floor), "close" (that, or inside an explicit
# trace_tolerance), "diverges" (some seed must diverge) or "any" (no claim).
Expectation = Literal["identical", "equivalent", "close", "diverges", "any"]


def default_expectation(is_plugin: bool) -> Expectation:
    """A plugin is a trainer under test, held to parity unless its probe says otherwise; a
    core probe varies knobs, whose effect depends on the fixture, so it claims nothing."""
    return "equivalent" if is_plugin else "any"


class Probe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=PROBE_ID_PATTERN)
    trainer: str = "core"
    description: str = ""
    knobs: dict[str, Any] = Field(default_factory=dict)
    # Passed to a plugin trainer as `request.options` (e.g. an adapter's "defaults" mode).
    options: dict[str, Any] = Field(default_factory=dict)
    # What the collector should find against the baseline; a mismatch fails the parity gate.
    # None: default_expectation of its trainer.
    expect: Expectation | None = None

    @field_validator("knobs")
    @classmethod
    def _knobs_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        apply(Knobs(), value)  # raises KnobError naming the knob
        return value

    def resolved(self, base: Knobs) -> Knobs:
        """The probe's knobs on top of ``base`` (the round's settings)."""
        return apply(base, self.knobs)


BUILTIN_PROBES: dict[str, Probe] = {
    "reference": Probe(
        id="reference", trainer="reference", description="mlx-lm's own training loop"
    ),
    "core": Probe(
        id="core", trainer="core", description="the core with every knob at mlx-lm's value"
    ),
}
