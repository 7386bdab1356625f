"""The device self-check: every probe job compares the GPU with the CPU before training and
records where each seed trained. This machine has no GPU, so the CPU stands in for one and a
broken measurement plays the paravirtual device that returns zeros."""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import numpy as np
import pytest

from mlx_parity import cell
from mlx_parity.device import DeviceError, check_device, fixture_step, run_on
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs
from mlx_parity.matrix import local_round

STAND_IN_GPU = mx.Device(mx.cpu)


def broken_gpu():
    """A measure whose first call (the GPU's, measured before the CPU's) returns zeros, as a
    broken device does."""
    calls = []

    def measure(device, computations):
        results = run_on(device, computations)
        calls.append(device)
        return {k: np.zeros_like(v) for k, v in results.items()} if len(calls) == 1 else results

    return measure


@pytest.fixture
def step(model_source):
    model = model_source.fresh_model()
    return fixture_step(model, model_source.tokenizer(), SMOKE.texts(), Knobs())


def test_without_a_gpu_auto_and_cpu_train_on_the_cpu_and_gpu_is_refused() -> None:
    for requested, reason in (("auto", "no GPU"), ("cpu", "asks for cpu")):
        check = check_device(requested, gpu=None)
        assert (check.trained_on, check.passed, check.differences) == ("cpu", True, {})
        assert reason in check.reason and check.label.startswith("cpu (")
    with pytest.raises(DeviceError, match="no GPU"):
        check_device("gpu", gpu=None)


def test_a_gpu_that_agrees_is_used(step) -> None:
    check = check_device("auto", step, gpu=STAND_IN_GPU)
    assert (check.trained_on, check.passed) == ("gpu", True)
    assert set(check.differences) == {"matmul", "softmax", "rms_norm", "compiled_step"}
    assert all(v == 0.0 for v in check.differences.values())  # the same device, bit for bit
    assert "agrees" in check.reason


def test_a_gpu_that_computes_wrongly_falls_back_to_the_cpu_or_is_refused(step) -> None:
    check = check_device("auto", step, gpu=STAND_IN_GPU, measure=broken_gpu())
    assert (check.trained_on, check.passed) == ("cpu", False)
    assert all(v == 1.0 for v in check.differences.values())  # zeros: off by 100%
    assert "disagrees with the CPU" in check.reason and "trained on the CPU" in check.reason
    with pytest.raises(DeviceError, match="disagrees with the CPU: matmul off by 1"):
        check_device("gpu", step, gpu=STAND_IN_GPU, measure=broken_gpu())


def test_every_seed_result_records_the_check(tmp_path, model_source, monkeypatch) -> None:
    """A cell whose GPU fails the check trains on the CPU and says why in each seed result."""

    def check_with_a_broken_gpu(source, fixture, probe, requested):
        step = fixture_step(source.fresh_model(), source.tokenizer(), fixture.texts(), probe.knobs)
        return check_device(requested, step, gpu=STAND_IN_GPU, measure=broken_gpu())

    monkeypatch.setattr(cell, "check_device_for", check_with_a_broken_gpu)
    rnd = local_round()
    probe = rnd.probe("core")
    probe = replace(probe, knobs=probe.knobs.model_copy(update={"steps": 2}))
    results = cell.run_cell("local", probe, rnd.fixture, [1, 2], tmp_path, source=model_source)
    for result in results:
        recorded = result.environment.device_check
        assert recorded is not None and not recorded.passed and recorded.trained_on == "cpu"
        assert result.environment.device == recorded.label
        assert "disagrees with the CPU" in recorded.reason
    assert results[0].environment.device_check == results[1].environment.device_check
