"""Which device a probe trains on, and whether that device computes correctly.

GitHub's hosted macOS arm64 runners are virtual machines whose Metal device is paravirtual
("Apple Paravirtual device"): GitHub documents GPU compute as unsupported there, and other
projects report missing GPU families and kernels returning zeros. MLX picks the GPU by default.
So before any seed trains, a probe job runs a few known computations — a matmul, a softmax, an
RMS norm and one compiled loss-and-gradient step of the fixture's model — on the default device
and on the CPU, compares them, and records the result in every seed result. The round's
``device`` setting decides what a mismatch means: ``auto`` trains on the CPU and says why,
``gpu`` refuses to train, ``cpu`` never uses the GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .artifact import DeviceCheck, DeviceChoice
from .core.batches import encode_rows, pad_rows
from .core.clip import global_norm
from .core.loss import shifted_loss
from .errors import UsageError
from .knobs import Knobs

# Largest |default − cpu| allowed, relative to the CPU result's largest magnitude. Float32 GPU
# and CPU kernels differ in the last bits (reduction order, fused multiply-add); a broken
# device is off by orders of magnitude more.
RELATIVE_TOLERANCE = 1e-3

Computation = Callable[[], mx.array]


class DeviceError(UsageError):
    """The round asks for the GPU and there is none, or it computes wrongly."""


def known_computations(step: Computation | None = None) -> dict[str, Computation]:
    """Small computations with fixed inputs; ``step`` adds the fixture's compiled step."""
    key = mx.random.key(20251102)
    a, b, x, w = (mx.random.normal(shape, key=k) for shape, k in zip(
        [(128, 96), (96, 64), (64, 1000), (1000,)], mx.random.split(key, 4), strict=True
    ))  # fmt: skip
    computations: dict[str, Computation] = {
        "matmul": lambda: a @ b,
        "softmax": lambda: mx.softmax(x * 10.0, axis=-1),
        "rms_norm": lambda: mx.fast.rms_norm(x, w, 1e-6),
    }
    if step is not None:
        computations["compiled_step"] = step
    return computations


def fixture_step(model: nn.Module, tokenizer, texts: list[str], knobs: Knobs) -> Computation:
    """One compiled loss-and-gradient step of the fixture's model on its first batch, as
    [loss, gradient norm]. Compiled afresh per call, so each device traces its own graph."""
    batch, lengths = pad_rows(encode_rows(tokenizer, texts[: knobs.batch_size]), knobs)
    loss_and_grad = nn.value_and_grad(model, partial(shifted_loss, rule=knobs.loss_mask))

    def step(batch: mx.array, lengths: mx.array) -> mx.array:
        (loss, _), grads = loss_and_grad(model, batch, lengths)
        return mx.stack([loss.astype(mx.float32), global_norm(grads)])

    state = [model.state]
    return lambda: mx.compile(step, inputs=state, outputs=state)(mx.array(batch), mx.array(lengths))


def run_on(device: mx.Device, computations: dict[str, Computation]) -> dict[str, np.ndarray]:
    previous = mx.default_device()
    mx.set_default_device(device)
    try:
        results = {name: compute() for name, compute in computations.items()}
        mx.eval(list(results.values()))
        return {name: np.array(value, dtype=np.float64) for name, value in results.items()}
    finally:
        mx.set_default_device(previous)


def relative_difference(value: np.ndarray, reference: np.ndarray) -> float:
    if value.shape != reference.shape or not np.all(np.isfinite(value)):
        return float("inf")
    scale = max(float(np.max(np.abs(reference))), 1e-30)
    return float(np.max(np.abs(value - reference))) / scale


def describe_device(device: mx.Device) -> dict[str, Any]:
    """The DeviceCheck fields that describe ``device``, from MLX's device_info."""
    info = {k: v for k, v in mx.device_info(device).items() if isinstance(v, str | int)}
    memory = info.get("memory_size", info.get("total_memory"))
    return {
        "name": str(info.get("device_name", device)),
        "architecture": str(info.get("architecture", "")),
        "memory_bytes": memory if isinstance(memory, int) else None,
        "info": info,
    }


def check_device(
    requested: DeviceChoice = "auto",
    step: Computation | None = None,
    *,
    gpu: mx.Device | None | Literal["detect"] = "detect",
    measure: Callable[[mx.Device, dict[str, Computation]], dict[str, np.ndarray]] = run_on,
) -> DeviceCheck:
    """Compare the GPU (MLX's default when there is one) with the CPU and choose where to train
    (see the module docstring); sets MLX's default device to that one. Tests stand a device in
    for the GPU (``gpu``) and break it (``measure`` runs the computations on a device)."""
    if gpu == "detect":
        gpu = mx.Device(mx.gpu) if mx.is_available(mx.gpu) else None
    if gpu is None and requested == "gpu":
        raise DeviceError("the round asks for device = gpu, but MLX has no GPU here")
    gpu_name = describe_device(gpu)["name"] if gpu is not None else None
    differences: dict[str, float] = {}
    passed, device = True, mx.Device(mx.cpu)
    if requested == "cpu":
        reason = "the round asks for cpu"
    elif gpu is None:
        reason = "no GPU: trained on the CPU"
    else:
        computations = known_computations(step)
        on_gpu, on_cpu = measure(gpu, computations), measure(device, computations)
        differences = {k: relative_difference(on_gpu[k], v) for k, v in on_cpu.items()}
        wrong = {k: v for k, v in differences.items() if not v <= RELATIVE_TOLERANCE}
        passed = not wrong
        if passed:
            device = gpu
            worst = max(differences.values(), default=0.0)
            reason = f"the GPU agrees with the CPU (worst relative difference {worst:.2g})"
        else:
            listed = ", ".join(f"{k} off by {v:.3g}" for k, v in wrong.items())
            reason = (
                f"the GPU ({gpu_name}) disagrees with the CPU: {listed} (relative; allowed "
                f"{RELATIVE_TOLERANCE:g})"
            )
            if requested == "gpu":
                raise DeviceError(f"the round asks for device = gpu, but {reason}")
            reason += ": trained on the CPU instead"
    mx.set_default_device(device)
    return DeviceCheck(
        requested=requested,
        trained_on="gpu" if device is gpu else "cpu",
        **describe_device(device),
        gpu_name=gpu_name,
        differences=differences,
        passed=passed,
        reason=reason,
    )
