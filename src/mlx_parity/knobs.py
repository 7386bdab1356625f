"""Every knob of the training stack: its name, domain, default (mlx-lm's value) and meaning, in
the one place probes, ``--set`` overrides, round files, artifacts, the core and explain's search
read them from. It imports no compute library, so loading a matrix (plan, collect, the
workflow's ubuntu jobs) never loads MLX."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UsageError

PaddingRule = Literal["mlx-lm", "multiple"]
MaskRule = Literal["inclusive", "exclusive"]
ClipKind = Literal["none", "value", "global_norm", "leaf_norm"]
ClipSemantics = Literal["explicit", "legacy"]
DType = Literal["as_loaded", "float16", "bfloat16", "float32"]
AccumNorm = Literal["mean", "token"]
BatchOrder = Literal["epoch", "reshuffle", "replacement"]
OptimizerDefaults = Literal["explicit", "mlx"]
LoraScaleRule = Literal["scale", "alpha_over_rank"]

# mlx-lm pads batches to 1 + a multiple of this (mlx_lm/tuner/trainer.py, iterate_batches).
PAD_TO = 32
# What an unset max_grad_value silently means under the legacy clip semantics.
LEGACY_DEFAULT_VALUE = 1.0


class KnobError(UsageError, ValueError):
    """An unknown knob or a bad value; the message names the knob."""


@dataclass(frozen=True)
class ClipPolicy:
    """The effective clip policy, as text: ``none``, ``value:v``, ``global_norm:v``,
    ``leaf_norm:v``. The core applies it (``core/clip.py``); this is only its meaning."""

    kind: ClipKind = "none"
    limit: float | None = None

    @classmethod
    def parse(cls, spec: str) -> ClipPolicy:
        kinds = get_args(ClipKind)
        kind, _, raw = spec.strip().partition(":")
        if kind not in kinds:
            raise ValueError(f"clip policy {spec!r}: kind must be one of {', '.join(kinds)}")
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


def resolve_clip(
    max_grad_value: float | None,
    max_grad_norm: float | None,
    semantics: ClipSemantics = "explicit",
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

    Under ``legacy`` an unset value limit silently means ±1.0 — the default the trainer that
    motivated this project shipped, invisible in its configuration; asking for a norm limit is
    explicit enough to switch that default off.
    """
    if semantics not in get_args(ClipSemantics):
        raise ValueError(f"clip_semantics must be 'explicit' or 'legacy', got {semantics!r}")
    for name, value in (("max_grad_value", max_grad_value), ("max_grad_norm", max_grad_norm)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be None or a number >= 0, got {value!r}")
    if max_grad_value and max_grad_norm:
        raise ValueError(
            "max_grad_value and max_grad_norm are both set; choose one clip policy "
            "(or set the effective policy directly with clip=...)"
        )
    if max_grad_norm:
        return ClipPolicy("global_norm", float(max_grad_norm))
    if max_grad_value:
        return ClipPolicy("value", float(max_grad_value))
    if semantics == "legacy" and max_grad_value is None:
        return ClipPolicy("value", LEGACY_DEFAULT_VALUE)
    return ClipPolicy()


class Knobs(BaseModel):
    """The resolved configuration of one training run. Defaults are mlx-lm's values plus the
    smoke fixture's training settings (batch 6, 30 steps, lr 1e-3, LoRA rank 8 scale 2.0 on
    the last 16 layers, max_seq_length 64). Each description says what the knob changes."""

    # allow_inf_nan off: lr = inf (or a NaN clip) is a typo, not a setting; a non-finite loss is
    # a result the run records, never an input.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    # --- behaviour: how a trainer works (what explain searches) ---
    padding: PaddingRule = Field(
        "mlx-lm", description="batch padding rule (mlx-lm: 1 + 32·⌈L/32⌉; multiple: no +1)"
    )
    pad_to: int = Field(PAD_TO, ge=1, description="the multiple batches are padded to")
    loss_mask: MaskRule = Field(
        "inclusive", description="which targets the loss trains on (inclusive: one pad target)"
    )
    # None means "resolve it from max_grad_value / max_grad_norm under clip_semantics"; after
    # validation it always holds the effective policy.
    clip: str | None = Field(None, description="gradient clipping policy (e.g. a silent ±1.0)")
    max_grad_value: float | None = Field(None, description="clip each gradient value to ±this")
    max_grad_norm: float | None = Field(None, description="clip the gradients' global norm")
    clip_semantics: ClipSemantics = Field(
        "explicit", description="what unset max_grad_* mean (legacy: a silent ±1.0 value clip)"
    )
    compile: bool = Field(True, description="mx.compile the step (never changes a loss)")
    num_layers: int = Field(16, ge=-1, description="how many layers get LoRA (-1: all)")
    # Seeding after LoRA init instead (with no dropout) trains exactly like not seeding.
    seed_after_load: bool = Field(True, description="seeding MLX's RNG before LoRA init")
    dtype: DType = Field("as_loaded", description="the dtype the base weights are cast to")
    bias_correction: bool = Field(True, description="Adam bias correction")
    optimizer_defaults: OptimizerDefaults = Field(
        "explicit",
        description="the optimizer built with bias_correction and weight_decay as set, or with "
        "MLX's own defaults (mlx: no bias correction, AdamW weight decay 0.01)",
    )
    batch_order: BatchOrder = Field(
        "epoch",
        description="how batches are drawn (epoch: a seeded permutation of the length-sorted "
        "chunks per epoch; reshuffle: a fresh permutation every step; replacement: chunks "
        "drawn with replacement)",
    )
    val_draws_rng: bool = Field(
        False, description="a validation pass drawing from the batch RNG before training"
    )
    lora_scale_rule: LoraScaleRule = Field(
        "scale", description="LoRA's multiplier: lora_scale, or lora_scale/lora_rank (alpha/rank)"
    )
    warmup_offset: int = Field(
        0, ge=0, le=1, description="steps the warmup schedule runs ahead (1: off by one)"
    )
    accumulate: bool = Field(
        True, description="grad_accum honoured (false: an update after every micro-step)"
    )
    grad_scale: float = Field(
        1.0, gt=0, description="a constant the gradients are multiplied by before the update"
    )
    accum_norm: AccumNorm = Field(
        "mean", description="how accumulated gradients are normalised (mean: ÷ steps)"
    )
    # --- settings: what a trainer is asked to do ---
    lora_rank: int = Field(8, ge=1, description="LoRA's rank")
    lora_scale: float = Field(2.0, description="LoRA's scale (see lora_scale_rule)")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on LoRA's input")
    # None: mlx-lm's default keys (every linear layer of a block: the 7 projections of gemma).
    lora_keys: tuple[str, ...] | None = Field(
        None, description="modules that get LoRA (none: every linear layer of a block)"
    )
    optimizer: Literal["adam", "adamw"] = Field("adamw", description="the optimizer")
    lr: float = Field(1e-3, gt=0, description="the learning rate (after any warmup)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's weight decay")
    schedule: Literal["constant", "linear_warmup"] = Field(
        "constant", description="the learning-rate schedule"
    )
    warmup_steps: int = Field(0, ge=0, description="steps of linear warmup")
    steps: int = Field(30, ge=1, description="micro-steps (batches) trained")
    batch_size: int = Field(6, ge=1, description="rows per micro-step")
    grad_accum: int = Field(1, ge=1, description="micro-steps per optimizer update")
    max_seq_length: int = Field(64, ge=2, description="tokens a row is cut to")
    max_new_tokens: int = Field(16, ge=1, description="tokens the smoke check generates")

    @field_validator("num_layers")
    @classmethod
    def _num_layers_not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("num_layers must be -1 (all layers) or a positive count")
        return v

    @field_validator("clip")
    @classmethod
    def _clip_parses(cls, v: str | None) -> str | None:
        return None if v is None else ClipPolicy.parse(v).spec

    @model_validator(mode="after")
    def _resolve_clip(self) -> Knobs:
        if self.clip is None:
            policy = resolve_clip(self.max_grad_value, self.max_grad_norm, self.clip_semantics)
            object.__setattr__(self, "clip", policy.spec)
        if self.schedule == "linear_warmup" and self.warmup_steps == 0:
            raise ValueError("schedule=linear_warmup needs warmup_steps > 0")
        if self.optimizer == "adam" and self.weight_decay > 0:
            raise ValueError("optimizer=adam has no weight decay; use optimizer=adamw")
        return self

    @property
    def clip_policy(self) -> ClipPolicy:
        return ClipPolicy.parse(self.clip or "none")

    def differing_from(self, other: Knobs) -> dict[str, Any]:
        """Knobs whose value differs from ``other`` (clip compared by effective policy)."""
        mine, theirs = self.model_dump(), other.model_dump()
        return {k: v for k, v in mine.items() if k not in CLIP_ARGUMENTS and theirs[k] != v}


KNOB_NAMES = tuple(Knobs.model_fields)
# The user-facing clip arguments; ``clip`` holds the policy they resolve to.
CLIP_ARGUMENTS = ("max_grad_value", "max_grad_norm", "clip_semantics")
# Knobs that describe how a trainer behaves (declared first in Knobs, up to accum_norm), as
# opposed to the settings it is asked to use (steps, lr, batch size…), which a search for "what
# does this trainer do" keeps fixed.
BEHAVIOUR_KNOBS = KNOB_NAMES[: KNOB_NAMES.index("accum_norm") + 1]


def knob_reference(width: int | None = None) -> str:
    """Every knob: the values it takes, its default and what it changes, the meaning wrapped
    to ``width`` columns (what ``probe --help`` prints, and where the catalogs ``init`` writes
    send a reader)."""
    defaults = Knobs().model_dump(mode="json")
    rows = [
        (name, _domain(name, field.annotation), _shown(defaults[name]), field.description or "")
        for name, field in Knobs.model_fields.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    indent = 2 + sum(widths) + 6
    lines = []
    for name, domain, default, meaning in rows:
        wrapped = textwrap.wrap(meaning, max(width - indent, 20)) if width else [meaning]
        head = f"  {name:<{widths[0]}}  {domain:<{widths[1]}}  {default:<{widths[2]}}  "
        lines.append((head + (wrapped[0] if wrapped else "")).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def _domain(name: str, annotation: Any) -> str:
    if name == "clip":
        return "|".join(["none", *(f"{kind}:V" for kind in get_args(ClipKind)[1:])])
    if get_origin(annotation) is Literal:
        return "|".join(get_args(annotation))
    optional = [arg for arg in get_args(annotation) if arg is not type(None)]
    if optional and len(optional) < len(get_args(annotation)):
        return _domain(name, optional[0]) + "|none"
    if get_origin(annotation) is tuple:
        return "a,b,…"
    return {bool: "true|false", int: "integer", float: "number"}.get(annotation, "text")


def _shown(default: Any) -> str:
    if default is None:
        return "none"
    return str(default).lower() if isinstance(default, bool) else str(default)


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``knob=value`` and check the knob exists; the value is typed by :func:`apply`."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise KnobError(f"--set expects knob=value, got {text!r}")
    _check_names([name])
    return name, value.strip()


def _check_names(names) -> None:
    for name in names:
        if name not in Knobs.model_fields:
            raise KnobError(f"unknown knob {name!r}; known knobs: {', '.join(KNOB_NAMES)}")


def coerce(name: str, value: Any) -> Any:
    """Turn a command-line string into the value a knob's type expects."""
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    if lowered in ("none", "null", ""):
        return None
    if name == "lora_keys":
        return tuple(k.strip() for k in value.split(",") if k.strip())
    if lowered in ("true", "on", "yes"):
        return True
    if lowered in ("false", "off", "no"):
        return False
    return value


def apply(base: Knobs, overrides: dict[str, Any]) -> Knobs:
    """``base`` with ``overrides`` applied and validated; errors name the offending knob.
    Overriding a clip argument re-resolves the effective policy unless ``clip`` is set too."""
    _check_names(overrides)
    data = base.model_dump()
    if set(CLIP_ARGUMENTS) & overrides.keys():
        data["clip"] = None
    data.update({k: coerce(k, v) for k, v in overrides.items()})
    try:
        return Knobs.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "knobs"
            problems.append(f"knob {where!r}: {err['msg']} (got {err.get('input')!r})")
        raise KnobError("; ".join(problems)) from None
