"""The detection suite's table: each candidate trainer, the defect it hides (as a core knob
change), and the catalog probe that carries the same change. Shared by
tests/test_detection.py and benchmarks/explain_time.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    function: str  # in candidates.py
    defect: tuple[str, Any] | None  # the knob change explain must name; None: identical
    probe: str | None  # the catalog probe bisect compares with core
    explained: bool = True
    # Correct but rounded otherwise: explained as the core at mlx-lm's values, not bit for bit.
    equivalent: bool = False
    # Training settings on top of the round's, where the defect needs them to show.
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def trainer(self) -> str:
        return f"plugin:candidates:{self.function}"


CASES = (
    Case("train_mlx_lm", None, None),
    Case("train_pad_no_plus_one", ("padding", "multiple"), "pad-multiple"),
    Case("train_exclusive_mask", ("loss_mask", "exclusive"), "mask-exclusive"),
    Case("train_legacy_clip", ("clip", "value:1"), "clip-legacy"),
    Case("train_no_seed", ("seed_after_load", False), "no-seed"),
    Case("train_token_accumulation", ("accum_norm", "token"), "accum-token"),
    Case("train_bias_correction_flipped", ("bias_correction", False), "no-bias-correction"),
    Case("train_float16", ("dtype", "float16"), "fp16"),
    Case("train_all_layers", ("num_layers", -1), "layers-all"),
    Case("train_cosine_schedule", None, None, explained=False),
    Case("train_reordered_loss", None, None, equivalent=True),
    Case("train_summed_accumulation", ("grad_scale", 2.0), None),
    Case("train_halved_gradients", ("grad_scale", 0.5), None),
    Case("train_reshuffled", ("batch_order", "reshuffle"), None),
    Case("train_with_replacement", ("batch_order", "replacement"), None),
    Case("train_validation_first", ("val_draws_rng", True), None),
    Case("train_ignores_accumulation", ("accumulate", False), None),
    Case("train_leaf_norm_clip", ("clip", "leaf_norm:1"), None),
    Case("train_mlx_adamw_defaults", ("optimizer_defaults", "mlx"), None),
    Case("train_alpha_over_rank", ("lora_scale_rule", "alpha_over_rank"), None),
    Case("train_seeded_after_lora", ("seed_after_load", False), None),
    Case(
        "train_warmup_off_by_one",
        ("warmup_offset", 1),
        None,
        settings=(("schedule", "linear_warmup"), ("warmup_steps", 3)),
    ),
)

ROUND = "discriminate"
SEEDS = (1, 7, 42)
