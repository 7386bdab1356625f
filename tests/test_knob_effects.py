"""Each knob moves what it should and nothing else."""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten
from mlx_lm.tuner.lora import LoRALinear

from helpers import losses, run_trainer, text_of_length
from mlx_parity.cell import prepare_model
from mlx_parity.core.setup import attach_lora, cast_weights
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs

# Eager: compile never changes a loss (tests/test_core_parity.py), and each new configuration
# compiled cold costs a g++ build on a fresh machine.
SHORT = Knobs(steps=4, compile=False)


def core(model_source, texts, seed=1, **changes):
    return run_trainer(model_source, "core", SHORT.model_copy(update=changes), seed, texts)


def test_exclusive_mask_differs_from_step_one_when_a_pad_target_exists(model_source) -> None:
    inclusive = core(model_source, SMOKE.texts())
    exclusive = core(model_source, SMOKE.texts(), loss_mask="exclusive")
    assert inclusive[0].loss != exclusive[0].loss
    # One pad target per row: 6 rows of 13 tokens train 13 targets each, or 12 without it.
    assert inclusive[0].ntoks == exclusive[0].ntoks + 6


def test_exclusive_mask_is_inert_when_the_row_fills_the_width(model_source, tokenizer) -> None:
    row_length = len(tokenizer.encode(SMOKE.rows[0])) + 1
    inclusive = core(model_source, SMOKE.texts(), max_seq_length=row_length)
    exclusive = core(model_source, SMOKE.texts(), max_seq_length=row_length, loss_mask="exclusive")
    assert inclusive[0].input_shape == (6, row_length)
    assert losses(inclusive) == losses(exclusive)


def test_multiple_padding_equals_mlx_lm_padding_off_the_boundary(model_source) -> None:
    mlx_lm = core(model_source, SMOKE.texts())
    multiple = core(model_source, SMOKE.texts(), padding="multiple")
    assert (mlx_lm[0].input_shape, multiple[0].input_shape) == ((6, 33), (6, 32))
    assert losses(mlx_lm) == losses(multiple)


def test_multiple_padding_differs_when_the_row_is_a_multiple_of_32(model_source, tokenizer) -> None:
    texts = [text_of_length(tokenizer, 32)] * 12
    mlx_lm = core(model_source, texts)
    multiple = core(model_source, texts, padding="multiple")
    assert (mlx_lm[0].input_shape, multiple[0].input_shape) == ((6, 33), (6, 32))
    # The pad target of mlx-lm's width vanishes: one token fewer per row, a different loss.
    assert mlx_lm[0].ntoks == multiple[0].ntoks + 6
    assert mlx_lm[0].loss != multiple[0].loss


def test_clip_changes_the_trace_only_after_the_first_update(model_source) -> None:
    free = core(model_source, SMOKE.texts())
    clipped = core(model_source, SMOKE.texts(), clip="value:0.0001")
    assert free[0].loss == clipped[0].loss  # the first loss is computed before any update
    # Adam's first update is lr * sign(g) whatever g's scale, so clipping shows from the
    # second update on: the third loss.
    assert free[2].loss != clipped[2].loss
    assert free[0].grad_norm == clipped[0].grad_norm  # the norm is reported before clipping


def test_legacy_semantics_clip_silently(model_source) -> None:
    legacy = Knobs(clip_semantics="legacy")
    assert legacy.clip == "value:1"
    assert Knobs().clip == "none"


@pytest.mark.parametrize(
    ("num_layers", "expected"),
    [(16, list(range(2, 18))), (4, list(range(14, 18))), (-1, list(range(18)))],
)
def test_num_layers_chooses_which_layers_get_lora(model_source, num_layers, expected) -> None:
    model = model_source.fresh_model()
    attach_lora(model, Knobs(num_layers=num_layers), seed=1)
    with_lora = [
        i for i, layer in enumerate(model.layers) if isinstance(layer.self_attn.q_proj, LoRALinear)
    ]
    assert with_lora == expected
    per_layer = [
        sum(isinstance(m, LoRALinear) for _, m in layer.named_modules()) for layer in model.layers
    ]
    assert all(per_layer[i] == 7 for i in expected)
    trainable = {k for k, _ in tree_flatten(model.trainable_parameters())}
    assert trainable and all("lora_" in k for k in trainable)


def test_num_layers_beyond_the_model_is_refused(model_source) -> None:
    with pytest.raises(ValueError, match="only 18 layers"):
        attach_lora(model_source.fresh_model(), Knobs(num_layers=40), seed=1)


def test_seed_after_load_controls_lora_init(model_source) -> None:
    def lora_a(seed: int, seeded: bool) -> list:
        model = prepare_model(model_source, "as_loaded")
        attach_lora(model, Knobs(seed_after_load=seeded), seed)
        return model.layers[-1].self_attn.q_proj.lora_a.tolist()

    assert lora_a(1, True) != lora_a(2, True)
    assert lora_a(1, False) == lora_a(2, False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_casts_the_base_weights(model_source, dtype) -> None:
    model = model_source.fresh_model()
    cast_weights(model, dtype)
    assert {v.dtype for _, v in tree_flatten(model.parameters())} == {getattr(mx, dtype)}


def test_dtype_float16_changes_the_trace(model_source) -> None:
    assert losses(core(model_source, SMOKE.texts())) != losses(
        core(model_source, SMOKE.texts(), dtype="float16")
    )


def test_accumulation_mean_vs_token(model_source, tokenizer) -> None:
    # Rows of different lengths give batches with different token counts, so the two
    # normalisations weight the micro-batches differently.
    texts = [SMOKE.rows[0]] * 6 + [text_of_length(tokenizer, 20)] * 6
    mean = core(model_source, texts, grad_accum=2)
    token = core(model_source, texts, grad_accum=2, accum_norm="token")
    assert losses(mean)[:2] == losses(token)[:2]  # identical until the first update lands
    assert losses(mean)[2:] != losses(token)[2:]
    assert mean[0].grad_norm is None and mean[1].grad_norm is not None


def test_token_accumulation_is_inert_without_accumulation(model_source) -> None:
    assert losses(core(model_source, SMOKE.texts())) == losses(
        core(model_source, SMOKE.texts(), accum_norm="token")
    )


def test_optimizer_knobs_move_the_trace(model_source) -> None:
    base = losses(core(model_source, SMOKE.texts()))
    assert losses(core(model_source, SMOKE.texts(), bias_correction=False))[1:] != base[1:]
    assert losses(core(model_source, SMOKE.texts(), lr=1e-2))[1:] != base[1:]
    warm = core(model_source, SMOKE.texts(), schedule="linear_warmup", warmup_steps=2)
    assert warm[0].lr == 0.0 and warm[2].lr == pytest.approx(1e-3)


# --- the sampling, accumulation, scale and optimizer defects published trainers ship ---------


def varied_texts(tokenizer) -> list[str]:
    """Four chunks of six rows with four different lengths: every batch is distinguishable."""
    return [text_of_length(tokenizer, n) for n in (10, 14, 18, 22) for _ in range(6)]


def fingerprints(records) -> list[str | None]:
    return [r.batch for r in records]


def test_reshuffle_draws_a_new_permutation_every_step(model_source, tokenizer) -> None:
    texts = varied_texts(tokenizer)
    epoch = core(model_source, texts)
    reshuffle = core(model_source, texts, batch_order="reshuffle")
    # Step 1 takes the first index of the same first permutation; from step 2 they part.
    assert fingerprints(epoch)[0] == fingerprints(reshuffle)[0]
    assert fingerprints(epoch)[1:] != fingerprints(reshuffle)[1:]
    assert len(set(fingerprints(epoch))) == 4  # an epoch visits every chunk once


def test_replacement_can_draw_a_chunk_twice_in_an_epoch(model_source, tokenizer) -> None:
    texts = varied_texts(tokenizer)
    drawn = fingerprints(core(model_source, texts, batch_order="replacement"))
    assert len(set(drawn)) < 4  # seed 1 draws chunk indices with a repeat
    assert drawn != fingerprints(core(model_source, texts))


def test_a_validation_draw_shifts_the_batch_order(model_source, tokenizer) -> None:
    texts = varied_texts(tokenizer)
    plain = core(model_source, texts)
    shifted = core(model_source, texts, val_draws_rng=True)
    assert fingerprints(plain) != fingerprints(shifted)
    assert sorted(fingerprints(plain)) == sorted(fingerprints(shifted))  # same chunks


def test_sampling_knobs_leave_identical_batches_alone(model_source) -> None:
    # Every SMOKE row is the same: whichever chunk is drawn, the trace is the same.
    base = losses(core(model_source, SMOKE.texts()))
    for change in ({"batch_order": "replacement"}, {"val_draws_rng": True}):
        assert losses(core(model_source, SMOKE.texts(), **change)) == base


def test_ignored_accumulation_updates_every_micro_step(model_source) -> None:
    honoured = core(model_source, SMOKE.texts(), grad_accum=2)
    ignored = core(model_source, SMOKE.texts(), grad_accum=2, accumulate=False)
    assert [r.updates for r in honoured] == [0, 1, 1, 2]
    assert [r.updates for r in ignored] == [1, 2, 3, 4]
    assert all(r.grad_norm is not None for r in ignored)
    assert losses(honoured)[0] == losses(ignored)[0]
    assert losses(honoured)[1] != losses(ignored)[1]
    # Without accumulation there is nothing to ignore.
    assert losses(core(model_source, SMOKE.texts(), accumulate=False)) == losses(
        core(model_source, SMOKE.texts())
    )


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_grad_scale_shows_in_the_gradient_norm_more_than_in_the_losses(model_source, scale):
    base = core(model_source, SMOKE.texts())
    scaled = core(model_source, SMOKE.texts(), grad_scale=scale)
    assert scaled[0].grad_norm == pytest.approx(scale * base[0].grad_norm, rel=1e-6)
    assert losses(scaled)[0] == losses(base)[0]
    # Adam divides the scale out (but for its epsilon): the losses barely move.
    assert losses(scaled)[1:] != losses(base)[1:]
    assert max(abs(a - b) for a, b in zip(losses(scaled), losses(base), strict=True)) < 1e-3


def test_mlx_optimizer_defaults_mean_no_bias_correction_and_weight_decay(model_source) -> None:
    mlx_defaults = losses(core(model_source, SMOKE.texts(), optimizer_defaults="mlx"))
    spelled_out = losses(
        core(model_source, SMOKE.texts(), bias_correction=False, weight_decay=0.01)
    )
    assert mlx_defaults == spelled_out
    assert mlx_defaults != losses(core(model_source, SMOKE.texts()))


def test_alpha_over_rank_divides_the_lora_scale_by_the_rank(model_source) -> None:
    alpha = core(model_source, SMOKE.texts(), lora_scale_rule="alpha_over_rank")
    explicit = core(model_source, SMOKE.texts(), lora_scale=SHORT.lora_scale / SHORT.lora_rank)
    assert losses(alpha) == losses(explicit)
    base = core(model_source, SMOKE.texts())
    assert losses(alpha)[0] == losses(base)[0]  # LoRA's B starts at zero: step 1 is the base
    # The first gradient reaches only B, through the scale: its norm scales by 1/rank.
    assert alpha[0].grad_norm == pytest.approx(base[0].grad_norm / SHORT.lora_rank, rel=1e-5)


def test_warmup_offset_runs_the_schedule_one_step_ahead(model_source) -> None:
    warm = {"schedule": "linear_warmup", "warmup_steps": 3}
    on_time = core(model_source, SMOKE.texts(), **warm)
    ahead = core(model_source, SMOKE.texts(), **warm, warmup_offset=1)
    assert [r.lr for r in ahead[:-1]] == pytest.approx([r.lr for r in on_time[1:]])
    assert losses(ahead)[1:] != losses(on_time)[1:]
    constant = losses(core(model_source, SMOKE.texts()))
    assert losses(core(model_source, SMOKE.texts(), warmup_offset=1)) == constant
