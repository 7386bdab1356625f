"""What every trainer reports per micro-step, and the one place that receives those reports.

The core, mlx-lm's reference loop (observed from outside) and plugins all hand their steps to a
:class:`StepLog`, so ordering, the harness's callback and the stop on a non-finite loss behave
the same whichever trainer ran.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StepRecord:
    step: int
    loss: float
    # Global L2 norm of the gradient an update applied, before clipping (None between updates).
    grad_norm: float | None
    ntoks: int
    input_shape: tuple[int, int]
    lr: float
    # A hash of the batch's token ids and lengths: which rows, in which order, padded how.
    batch: str | None = None
    # Optimizer updates made so far, this step's included.
    updates: int | None = None


def batch_fingerprint(batch: Any, lengths: Any) -> str:
    """16 hex digits identifying a batch's token ids and (offset, length) pairs."""
    digest = hashlib.blake2b(digest_size=8)
    for array in (batch, lengths):
        values = np.asarray(array)
        digest.update(str(values.shape).encode())
        digest.update(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return digest.hexdigest()


StepCallback = Callable[[StepRecord], None]


class StopTraining(Exception):
    """Ends training early: raised by a step callback, or by :class:`StepLog` after a
    non-finite loss (nothing trained after it is meaningful)."""


class StepOrderError(ValueError):
    """A trainer reported steps out of order (they are 1-based and consecutive)."""


@dataclass
class StepLog:
    on_step: StepCallback | None = None
    records: list[StepRecord] = field(default_factory=list)

    def add(self, record: StepRecord) -> None:
        """Record one step; raises :class:`StopTraining` once the loss is not finite."""
        expected = len(self.records) + 1
        if record.step != expected:
            raise StepOrderError(f"step {record.step} reported, expected step {expected}")
        self.records.append(record)
        if self.on_step is not None:
            self.on_step(record)
        if not math.isfinite(record.loss):
            raise StopTraining
