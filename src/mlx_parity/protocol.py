"""Protocol v2, which an external trainer implements to be probed exactly like ``reference`` and
``core`` (designed from unsloth-zoo, mlx-tune and mlx-lm-lora, whose adapters are in
``mlx_parity/adapters/``; README.md, "Probing your own trainer", shows a plugin).

A plugin is one function ``train(request: TrainRequest)``; a probe names it
``trainer = "plugin:package.module:function"``, or ``"plugin:NAME"`` for an entry point in the
group ``mlx_parity.trainers``, and may pass it ``options = {...}``. The harness guarantees, for
every seed: fresh weights loaded through ``mlx_lm.load`` and cast to ``settings.dtype`` (or
:meth:`TrainRequest.load` for a trainer that loads its own: return that model so the harness
evaluates it); Python's and numpy's RNG seeded with the seed, as mlx-lm's CLI seeds numpy; MLX's
RNG in a state that does not depend on the seed, so a trainer that never seeds MLX is seen for
what it is; its output captured and a failure's traceback recorded. ``settings.steps`` counts
micro-steps (batches). The plugin reports every micro-step once, in order (through
:meth:`TrainRequest.mlx_lm`, :meth:`TrainRequest.watch_loss` and :meth:`TrainRequest.update`, or
:meth:`TrainRequest.report_step`) and declares with :meth:`TrainRequest.cannot_honour` each
setting it cannot take. A non-finite loss ends training (``status: nonfinite``).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from .knobs import KNOB_NAMES, Knobs
from .steps import StepCallback, StepLog, StepRecord, StopTraining, batch_fingerprint
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
    model_path: str = ""
    # The probe's `options` table, for the plugin alone.
    options: dict[str, Any] = field(default_factory=dict)
    on_step: StepCallback | None = None
    log: StepLog = field(init=False)
    # Settings the trainer cannot take, with why (recorded with every seed result).
    unhonoured: dict[str, str] = field(init=False, default_factory=dict)
    _loss_observer: Any = field(init=False, default=None)
    _loaded_own: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.log = StepLog(self.on_step)

    @property
    def records(self) -> list[StepRecord]:
        return self.log.records

    @property
    def micro_steps(self) -> int:
        return self.settings.steps

    @property
    def optimizer_steps(self) -> int:
        """Updates the micro-steps make; a trailing partial window is never applied."""
        return self.settings.steps // self.settings.grad_accum

    def load(self) -> tuple[Any, Any]:
        """Fresh ``(model, tokenizer)`` from ``model_path`` through ``mlx_lm.load``, cast to
        ``settings.dtype``, for a trainer that loads its model itself."""
        from mlx_lm import load

        from .core.setup import cast_weights

        model, tokenizer = load(self.model_path)
        cast_weights(model, self.settings.dtype)
        self._loaded_own = True
        return model, tokenizer

    def cannot_honour(self, knob: str, reason: str) -> None:
        """Declare that the trainer cannot take ``knob``'s value (the report says so)."""
        if knob not in KNOB_NAMES:
            raise PluginError(f"cannot_honour: unknown knob {knob!r}")
        self.unhonoured[knob] = reason

    def mlx_lm(self):
        """An observer for a loop shaped like ``mlx_lm.tuner.trainer.train``
        (:class:`mlx_parity.observe.MlxLmObserver`)."""
        from .observe import MlxLmObserver

        return MlxLmObserver(self.log)

    def watch_loss(self, loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """``loss_fn(model, batch, lengths, ...) -> (loss, ntoks, ...)``, recorded per call
        (an eager step only); close each optimizer update with :meth:`update`."""
        if self._loss_observer is None:
            from .observe import LossObserver

            self._loss_observer = LossObserver(self.log)
        return self._loss_observer.wrap(loss_fn)

    def update(self, lr: float | None = None, grad_norm: float | None = None) -> None:
        """An optimizer update happened: report the micro-steps since the last one."""
        if self._loss_observer is None:
            raise PluginError("update() without watch_loss(): nothing observed to report")
        self._loss_observer.update(lr, grad_norm)

    def report_step(
        self,
        step: int,
        loss: float,
        ntoks: int,
        input_shape: tuple[int, int],
        grad_norm: float | None = None,
        lr: float | None = None,
        batch: Any = None,
        updates: int | None = None,
    ) -> None:
        """Report one micro-step (1-based, consecutive). Non-finite loss stops training.
        ``batch`` is the ``(tokens, lengths)`` the step trained on (recorded as a fingerprint)
        and ``updates`` the optimizer updates made so far; both are optional."""
        self.log.add(
            StepRecord(
                step=step,
                loss=float(loss),
                grad_norm=None if grad_norm is None else float(grad_norm),
                ntoks=int(ntoks),
                input_shape=(int(input_shape[0]), int(input_shape[1])),
                lr=float("nan") if lr is None else float(lr),
                batch=None if batch is None else batch_fingerprint(*batch),
                updates=updates,
            )
        )


PluginFunction = Callable[[TrainRequest], Any]


class PluginRecords(list):
    """A plugin's steps, and what else its run leaves for the harness: the model it trained
    (when it loaded its own) and the settings it declared it cannot honour."""

    def __init__(self, request: TrainRequest, model: Any) -> None:
        super().__init__(request.records)
        self.model = model
        self.unhonoured = dict(request.unhonoured)


def load_plugin(spec: str) -> PluginFunction:
    """Resolve ``plugin:module:function`` or ``plugin:NAME`` (an entry point) to a callable."""
    target = spec.removeprefix(PLUGIN_PREFIX)
    if ":" in target:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an import that raises anything is a plugin that does not load
            raise PluginError(
                f"trainer {spec!r}: cannot import {module_name!r} ({_import_failure(exc)})"
            ) from None
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
        try:
            function = next(iter(found)).load()
        except Exception as exc:
            raise PluginError(
                f"trainer {spec!r}: cannot import it ({_import_failure(exc)})"
            ) from None
    if not callable(function):
        raise PluginError(f"trainer {spec!r} is not callable")
    return function


def _import_failure(exc: Exception) -> str:
    # "No module named 'x'" says what it is; any other error needs its type (SyntaxError, ...).
    return str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"


def _trained_model(request: TrainRequest, returned: Any, model: Any) -> Any:
    """The model the harness evaluates: the plugin's own when it loaded one, else the one it
    was given. A wrong return is refused here, where the message can say what was expected."""
    import mlx.nn as nn

    if returned is None:
        if request._loaded_own:
            raise PluginError(
                "the plugin loaded its own model with request.load() but returned none: return "
                "it, so that the harness evaluates the model that was trained"
            )
        return model
    if not isinstance(returned, nn.Module):
        raise PluginError(
            f"the plugin returned a {type(returned).__name__}, not a model: return None, or the "
            "model it loaded with request.load() and trained"
        )
    return returned


def as_trainer(function: PluginFunction):
    """Adapt a plugin to the harness's trainer signature."""

    def train(
        model, tokenizer, texts, knobs, seed, on_step=None, *, model_path="", options=None
    ) -> PluginRecords:
        request = TrainRequest(
            model, tokenizer, texts, knobs, seed, model_path, dict(options or {}), on_step
        )
        random.seed(seed)
        np.random.seed(seed)
        try:
            trained = function(request)
            if request._loss_observer is not None:
                request._loss_observer.flush()  # steps after the last update
        except StopTraining:  # a non-finite loss: the seed's result is that, whatever the model
            return PluginRecords(request, model)
        if not request.records:
            raise PluginError("the plugin reported no step")
        return PluginRecords(request, _trained_model(request, trained, model))

    return train
