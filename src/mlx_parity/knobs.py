"""Every knob of the training stack, with mlx-lm's value as the default (DESIGN.md §3).

One typed object, resolved once: probes, ``--set`` overrides, round files and artifacts all go
through :class:`Knobs`, so a knob's name, type and allowed values live in exactly one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .core.clip import ClipPolicy, resolve_clip

DEFAULT_LORA_KEYS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


class KnobError(ValueError):
    """An unknown knob or a bad value; the message names the knob."""


class Knobs(BaseModel):
    """The resolved configuration of one training run. Defaults are mlx-lm's (and the smoke
    fixture's training settings, DESIGN.md §1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Training core pieces.
    padding: Literal["mlx-lm", "multiple"] = "mlx-lm"
    pad_to: int = Field(32, ge=1)
    loss_mask: Literal["inclusive", "exclusive"] = "inclusive"
    # The effective clip policy. ``None`` means "resolve it from max_grad_value / max_grad_norm
    # under clip_semantics"; after validation it always holds the effective policy string.
    clip: str | None = None
    max_grad_value: float | None = None
    max_grad_norm: float | None = None
    clip_semantics: Literal["explicit", "legacy"] = "explicit"
    compile: bool = True
    # LoRA.
    num_layers: int = Field(16, ge=-1)
    lora_rank: int = Field(8, ge=1)
    lora_scale: float = 2.0
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_keys: tuple[str, ...] | None = None
    seed_after_load: bool = True
    dtype: Literal["as_loaded", "float16", "bfloat16", "float32"] = "as_loaded"
    # Optimizer.
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    bias_correction: bool = True
    schedule: Literal["constant", "linear_warmup"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    # Batching.
    steps: int = Field(30, ge=1)
    batch_size: int = Field(6, ge=1)
    grad_accum: int = Field(1, ge=1)
    accum_norm: Literal["mean", "token"] = "mean"
    max_seq_length: int = Field(64, ge=2)
    # Evaluation.
    max_new_tokens: int = Field(16, ge=1)

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
        ignore = {"max_grad_value", "max_grad_norm", "clip_semantics"}
        mine, theirs = self.model_dump(), other.model_dump()
        return {k: v for k, v in mine.items() if k not in ignore and theirs[k] != v}


KNOB_NAMES = tuple(Knobs.model_fields)


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``knob=value`` and check the knob exists; the value is typed by :func:`apply`."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise KnobError(f"--set expects knob=value, got {text!r}")
    if name not in Knobs.model_fields:
        raise KnobError(f"unknown knob {name!r}; known knobs: {', '.join(KNOB_NAMES)}")
    return name, value.strip()


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

    Overriding a clip argument re-resolves the effective policy unless ``clip`` is set too.
    """
    for name in overrides:
        if name not in Knobs.model_fields:
            raise KnobError(f"unknown knob {name!r}; known knobs: {', '.join(KNOB_NAMES)}")
    data = base.model_dump()
    if {"max_grad_value", "max_grad_norm", "clip_semantics"} & overrides.keys():
        data["clip"] = None
    data.update({k: coerce(k, v) for k, v in overrides.items()})
    try:
        return Knobs.model_validate(data)
    except ValidationError as exc:
        raise KnobError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "knobs"
        parts.append(f"knob {where!r}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)
