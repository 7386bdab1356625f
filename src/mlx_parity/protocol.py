"""The protocol an external trainer implements to be probed exactly like ``reference`` and
``core``.

A plugin is one function that takes a :class:`TrainRequest` and trains::

    def train(request: TrainRequest) -> None:
        model, tokenizer = request.model, request.tokenizer   # loaded by mlx_lm.load
        s = request.settings                                   # steps, lr, batch_size, ...
        ...                                                    # LoRA, optimizer, batches
        for step in range(1, s.steps + 1):
            ...
            request.report_step(step, loss=..., grad_norm=..., ntoks=..., input_shape=(B, W))

A probe names it ``trainer = "plugin:package.module:function"``, or ``trainer = "plugin:NAME"``
for a function an installed package registers under the entry-point group ``mlx_parity.trainers``.

What the harness guarantees: fresh weights loaded through ``mlx_lm.load`` for every seed, MLX's
RNG put in a fixed state before the load (a trainer that never seeds is still reproducible),
and the model trained in place (the harness evaluates it afterwards). What the plugin must do:
report every micro-step once, in order, with the float32 loss of that step's batch, the number
of trained target tokens, the padded batch's (rows, width) and, on optimizer updates, the
gradient norm (None otherwise). Reporting a non-finite loss ends training: the harness records
it (``status: nonfinite``) and stops the plugin.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .knobs import Knobs
from .steps import StepCallback, StepLog, StepRecord, StopTraining
from .trainers import ENTRY_POINT_GROUP, PLUGIN_PREFIX, TrainerError


class PluginError(TrainerError):
    """A plugin that cannot be found, imported, or that breaks the protocol."""


@dataclass
class TrainRequest:
    """Everything a trainer gets for one seed."""

    model: Any
    tokenizer: Any
    texts: list[str]
    settings: Knobs
    seed: int
    on_step: StepCallback | None = None
    log: StepLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = StepLog(self.on_step)

    @property
    def records(self) -> list[StepRecord]:
        return self.log.records

    def report_step(
        self,
        step: int,
        loss: float,
        ntoks: int,
        input_shape: tuple[int, int],
        grad_norm: float | None = None,
        lr: float | None = None,
    ) -> None:
        """Report one micro-step (1-based, consecutive). Non-finite loss stops training."""
        self.log.add(
            StepRecord(
                step=step,
                loss=float(loss),
                grad_norm=None if grad_norm is None else float(grad_norm),
                ntoks=int(ntoks),
                input_shape=(int(input_shape[0]), int(input_shape[1])),
                lr=float("nan") if lr is None else float(lr),
            )
        )


PluginFunction = Callable[[TrainRequest], None]


def load_plugin(spec: str) -> PluginFunction:
    """Resolve ``plugin:module:function`` or ``plugin:NAME`` (an entry point) to a callable."""
    target = spec.removeprefix(PLUGIN_PREFIX)
    if ":" in target:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"trainer {spec!r}: cannot import {module_name!r} ({exc})") from None
        function = getattr(module, attr, None)
        if function is None:
            raise PluginError(f"trainer {spec!r}: module {module_name!r} has no {attr!r}")
    else:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=target)
        if not found:
            known = sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
            raise PluginError(
                f"trainer {spec!r}: no entry point {target!r} in group {ENTRY_POINT_GROUP!r} "
                f"(installed: {', '.join(known) or 'none'})"
            )
        function = next(iter(found)).load()
    if not callable(function):
        raise PluginError(f"trainer {spec!r} is not callable")
    return function


def as_trainer(function: PluginFunction):
    """Adapt a plugin to the harness's trainer signature."""

    def train(model, tokenizer, texts, knobs, seed, on_step=None) -> list[StepRecord]:
        request = TrainRequest(model, tokenizer, texts, knobs, seed, on_step)
        with contextlib.suppress(StopTraining):
            function(request)
        if not request.records:
            raise PluginError("the plugin reported no step")
        return request.records

    return train
