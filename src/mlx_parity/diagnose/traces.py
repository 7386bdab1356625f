"""Run the core for one configuration and compare its steps with a target's.

Runs here exist only to be compared, so they skip evaluation and run eagerly: compile on or
off gives bit-identical losses (tested), and eager mode avoids a cold C++ compile for every new
configuration the search tries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..artifact import Row
from ..cell import ModelSource, prepare_model
from ..core.trainer import train_core
from ..fixture import Fixture
from ..knobs import Knobs
from ..steps import StepRecord, StopTraining
from ..traces import Allowance, step_agrees


@dataclass
class TraceRunner:
    """Runs the core on one fixture and counts the steps it trains (the search's cost). Full
    traces (no target) are remembered per (configuration, seed): every explanation on a fixture
    starts with the same base and single-knob runs, so a shared runner trains them once."""

    fixture: Fixture
    source: ModelSource
    steps_trained: int = 0
    _full: dict[tuple[str, int], list[Row]] = field(default_factory=dict, repr=False)

    def trace(
        self,
        knobs: Knobs,
        seed: int,
        target: list[Row] | None = None,
        allowance: Allowance | float = 0.0,
    ) -> list[Row]:
        """Every step of ``knobs`` on ``seed``; with a ``target``, training stops at the first
        step where a signal departs from it (the rest cannot make it match)."""
        knobs = knobs.model_copy(update={"compile": False})
        key = (knobs.model_dump_json(), seed)
        if target is None and key in self._full:
            return list(self._full[key])
        allowance = Allowance.of(allowance)
        rows: list[Row] = []

        def on_step(record: StepRecord) -> None:
            row = Row(**vars(record))
            rows.append(row)
            i = record.step - 1
            if target is not None and (
                i >= len(target) or not step_agrees(row, target[i], allowance)
            ):
                raise StopTraining

        model = prepare_model(self.source, knobs.dtype)
        train_core(model, self.source.tokenizer(), self.fixture.texts(), knobs, seed, on_step)
        self.steps_trained += len(rows)
        if target is None:
            self._full[key] = rows
        return list(rows)
