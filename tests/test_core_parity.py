"""With every knob at mlx-lm's value the core reproduces mlx-lm's trainer bit for bit."""

from __future__ import annotations

from helpers import losses, run_trainer
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs

SEEDS = (1, 42, 3407)


def test_core_equals_reference_bitwise_compile_on_and_off(model_source) -> None:
    knobs = Knobs(steps=30)
    for seed in SEEDS:
        reference = run_trainer(model_source, "reference", knobs, seed, SMOKE.texts())
        compiled = run_trainer(model_source, "core", knobs, seed, SMOKE.texts())
        eager = run_trainer(
            model_source, "core", knobs.model_copy(update={"compile": False}), seed, SMOKE.texts()
        )
        assert len(reference) == 30
        # Bitwise: float equality on the exact float32 values, not approx.
        assert losses(compiled) == losses(reference), f"seed {seed}"
        assert losses(eager) == losses(reference), f"seed {seed}"
        assert [r.grad_norm for r in compiled] == [r.grad_norm for r in reference]
        assert [r.ntoks for r in compiled] == [r.ntoks for r in reference]
        assert [r.input_shape for r in compiled] == [r.input_shape for r in reference]
        assert [r.lr for r in compiled] == [r.lr for r in reference]
        # The training actually moved: the loss fell.
        assert reference[-1].loss < reference[0].loss


def test_seeds_give_different_traces(model_source) -> None:
    knobs = Knobs(steps=3)
    a = run_trainer(model_source, "core", knobs, 1, SMOKE.texts())
    b = run_trainer(model_source, "core", knobs, 7, SMOKE.texts())
    assert losses(a) != losses(b)


def test_recording_the_gradient_norm_leaves_mlx_lm_untouched(model_source, monkeypatch) -> None:
    """The reference reads grad norms through a watched optimizer; without the watch, mlx-lm's
    plain optimizer gives the same losses, so the observation does not perturb the reference."""
    from mlx_parity import observe

    knobs = Knobs(steps=6)
    observed = run_trainer(model_source, "reference", knobs, 5, SMOKE.texts())
    monkeypatch.setattr(observe, "watch_optimizer", lambda optimizer: optimizer)
    plain = run_trainer(model_source, "reference", knobs, 5, SMOKE.texts())
    assert losses(observed) == losses(plain)
    assert all(r.grad_norm is None for r in plain)
    assert all(r.grad_norm > 0 for r in observed)
