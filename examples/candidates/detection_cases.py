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
)

ROUND = "discriminate"
SEEDS = (1, 7, 42)
