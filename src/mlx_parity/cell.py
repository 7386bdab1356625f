"""One probe cell: a probe trained over a list of seeds in one process, one artifact per seed.

Each seed's artifact is written atomically as soon as the seed finishes, so a job killed halfway
keeps every seed it completed. A seed that fails records ``status: error`` and the cell goes on;
a non-finite loss is a result (``status: nonfinite``), not an exception.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx

from . import artifact
from .artifact import DeviceCheck, DeviceChoice, Row, SeedResult
from .core.setup import cast_weights
from .environment import capture
from .errors import UsageError
from .evaluate import evaluate
from .fixture import Fixture
from .knobs import Knobs
from .matrix import ResolvedProbe
from .noise import NoiseSample, sample_drift
from .steps import StepRecord

# MLX's RNG state right before every trainer runs, so a trainer that never seeds
# (seed_after_load=false) still gets a reproducible, seed-independent LoRA init. Set after the
# model load: building a model consumes RNG, and only some seeds build one.
UNSEEDED_STATE = 0


class ModelLoadError(UsageError):
    """The fixture's model could not be loaded; the message says from where and why."""


@dataclass
class ModelSource:
    """Loads the fixture's model through mlx-lm: ``mlx_lm.load(path)`` once, then fresh weights
    per seed through the ``load_model`` it uses (training never changes the tokenizer)."""

    path: str
    _tokenizer: Any = None
    _first_model: Any = None
    _resolved: Path | None = None

    def tokenizer(self):
        if self._tokenizer is None:
            from mlx_lm import load
            from mlx_lm.utils import _download

            try:
                self._resolved = Path(_download(self.path))
                self._first_model, self._tokenizer = load(str(self._resolved))
            except Exception as exc:  # mlx-lm raises many types for a bad path or hub id
                raise ModelLoadError(f"cannot load model {self.path!r}: {exc}") from None
        return self._tokenizer

    def fresh_model(self):
        self.tokenizer()
        if self._first_model is not None:
            model, self._first_model = self._first_model, None
            return model
        from mlx_lm.utils import load_model

        model, _ = load_model(self._resolved)
        return model


def check_device_for(
    source: ModelSource, fixture: Fixture, probe: ResolvedProbe, requested: DeviceChoice
) -> DeviceCheck:
    """The device self-check (``device.py``) with one compiled step of this fixture's model;
    leaves MLX's default device on the device chosen."""
    from .device import check_device, fixture_step

    step = fixture_step(source.fresh_model(), source.tokenizer(), fixture.texts(), probe.knobs)
    return check_device(requested, step)


def prepare_model(source: ModelSource, dtype: str):
    """Fresh weights for one seed, cast to ``dtype``, with MLX's RNG in the harness state."""
    model = source.fresh_model()
    cast_weights(model, dtype)
    mx.random.seed(UNSEEDED_STATE)
    return model


# Trainers whose trace is the core's bit for bit (tests/test_core_parity.py): a baseline of
# these is its own unperturbed reference for the noise floor.
BITWISE_CORE = ("core", "reference")


def measure_noise(
    source: ModelSource,
    fixture: Fixture,
    knobs: Knobs,
    seed: int,
    trace: list[StepRecord] | None = None,
) -> NoiseSample:
    """How far each equivalent variant of the core (``core/variants.py``) drifts from the core's
    trace on ``seed``; ``trace`` is that trace when the caller already has it."""
    from .core.trainer import train_core
    from .core.variants import VARIANTS, train_variant

    tokenizer, texts = source.tokenizer(), fixture.texts()
    if trace is None:
        trace = train_core(prepare_model(source, knobs.dtype), tokenizer, texts, knobs, seed)
    drifted = {}
    for variant in VARIANTS:
        model = prepare_model(source, knobs.dtype)
        records = train_variant(variant, model, tokenizer, texts, knobs, seed)
        drifted[variant] = [(r.loss, r.grad_norm) for r in records]
    return sample_drift([(r.loss, r.grad_norm) for r in trace], drifted)


@dataclass
class CellProgress:
    """Per-seed progress on stderr, quiet when not wanted: on a terminal a bar per seed (tqdm)
    stepping with its loss; in a log (a CI job, a pipe), where a redrawn bar is noise, a line as
    each seed ends. It writes to its own copy of stderr, taken before training, so a trainer's
    captured output never swallows it."""

    enabled: bool = True
    _bar: Any = field(default=None, init=False)
    _terminal: Any = field(default=None, init=False)
    # In a log: the seed being trained, and when it started (its line says how long it took).
    _seed: tuple[str, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.enabled:
            sys.stderr.flush()
            self._terminal = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)

    def start_seed(self, label: str, total: int) -> None:
        if not self.enabled:
            return
        if self._terminal.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="step", file=self._terminal, leave=True)
        else:
            self._seed = label, time.perf_counter()

    def step(self, record: StepRecord) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{record.loss:.4f}", refresh=False)

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=self._terminal)

    def end_seed(self, summary: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(summary)
            self._bar.close()
            self._bar = None
        elif self._seed is not None:
            label, started = self._seed
            print(f"{label}: {summary} ({time.perf_counter() - started:.1f}s)", file=self._terminal)
            self._seed = None


def run_seed(
    round_id: str,
    probe: ResolvedProbe,
    fixture: Fixture,
    source: ModelSource,
    seed: int,
    on_step: Callable[[StepRecord], None] | None = None,
    device: DeviceCheck | Exception | None = None,
    calibrate: bool = False,
) -> SeedResult:
    """Train and evaluate one seed; every failure becomes part of the result. ``device`` is
    the self-check of the device it trains on, recorded with the result (or why it failed).
    ``calibrate`` (a baseline's first seeds) also measures the noise floor on this seed."""
    knobs = probe.knobs
    timings: dict[str, float] = {}
    records: list[StepRecord] = []
    status, error, noise = "ok", None, None
    evaluation: dict[str, Any] = {}  # the fields of evaluate()'s Evaluation, once it ran
    unhonoured: dict[str, str] = {}
    output: list[str] = []
    start = time.perf_counter()

    def record_step(record: StepRecord) -> None:
        records.append(record)
        if on_step is not None:
            on_step(record)

    try:
        if isinstance(device, Exception):
            raise device
        tokenizer = source.tokenizer()
        model = prepare_model(source, knobs.dtype)
        timings["load_s"] = time.perf_counter() - start
        tic = time.perf_counter()
        trainer = probe.trainer.load()
        # A plugin also gets where the model came from and the probe's options; it may return
        # the model it trained (it loaded its own) and the settings it cannot honour.
        context: dict[str, Any] = {}
        if probe.trainer.is_plugin:
            context = dict(model_path=source.path, options=probe.probe.options)
        with captured_output(output):
            trained = trainer(
                model, tokenizer, fixture.texts(), knobs, seed, record_step, **context
            )
        model = getattr(trained, "model", model)
        unhonoured = getattr(trained, "unhonoured", {})
        timings["train_s"] = time.perf_counter() - tic
        if records and not all(math.isfinite(r.loss) for r in records):
            status = "nonfinite"
        tic = time.perf_counter()
        evaluation = asdict(evaluate(model, tokenizer, fixture, knobs.max_new_tokens))
        timings["eval_s"] = time.perf_counter() - tic
        if calibrate and status == "ok":
            tic = time.perf_counter()
            own = records if probe.trainer.name in BITWISE_CORE else None
            noise = measure_noise(source, fixture, knobs, seed, own)
            timings["noise_s"] = time.perf_counter() - tic
    except (Exception, SystemExit) as exc:  # a seed's failure is recorded, the cell goes on
        status = "error"
        error = "".join(traceback.format_exception(exc)).strip()
        if isinstance(exc, SystemExit):  # the last line is what reports show
            error += f"\nthe trainer called sys.exit({exc.code!r}): a plugin must return instead"
    timings["total_s"] = time.perf_counter() - start
    environment = capture()
    if isinstance(device, DeviceCheck):
        update = {"device": device.label, "device_check": device}
        environment = environment.model_copy(update=update)
    passed = evaluation.pop("passed", False) and status == "ok"
    return SeedResult(
        round_id=round_id,
        probe_id=probe.id,
        seed=seed,
        trainer=probe.trainer.name,
        fixture=fixture.model_dump(mode="json"),
        config=knobs.model_dump(mode="json"),
        options=probe.probe.options,
        environment=environment,
        rows=[Row(**vars(r)) for r in records],
        **evaluation,
        passed=passed,
        status=status,
        error=error,
        unhonoured=unhonoured,
        output_tail="\n".join(output) or None,
        noise=noise,
        timings=timings,
    )


def run_cell(
    round_id: str,
    probe: ResolvedProbe,
    fixture: Fixture,
    seeds: list[int],
    out_dir: Path,
    progress: CellProgress | None = None,
    source: ModelSource | None = None,
    device: DeviceChoice = "auto",
    calibrate: Collection[int] = (),
) -> list[SeedResult]:
    """Check the device, then run every seed of the cell, writing each artifact as soon as its
    seed finishes; the seeds in ``calibrate`` also measure the noise floor."""
    probe.trainer.check_knobs(probe.knobs)
    probe.trainer.load()  # a plugin that does not import fails here, before any seed
    source = source or ModelSource(fixture.model_path())
    source.tokenizer()  # fail fast on a bad model path, before any seed
    check = check_device_for(source, fixture, probe, device)
    progress = progress or CellProgress(enabled=False)
    progress.note(f"device: {check.label}; {check.reason}")
    results = []
    for seed in seeds:
        progress.start_seed(f"{probe.id} seed {seed}", probe.knobs.steps)
        result = run_seed(
            round_id, probe, fixture, source, seed, progress.step, check, seed in calibrate
        )
        artifact.save(result, out_dir)
        verdict = "pass" if result.passed else "fail"
        cf = "-" if result.cf_loss is None else f"{result.cf_loss:.3f}"
        progress.end_seed(f"{result.status} {verdict} cf={cf}")
        results.append(result)
    return results


# How many of a trainer's last output lines a seed result keeps.
OUTPUT_TAIL_LINES = 40


@contextlib.contextmanager
def captured_output(tail: list[str]) -> Iterator[None]:
    """Send whatever the trainer prints — Python or native code, stdout or stderr — to a file
    instead of the terminal, and leave its last lines in ``tail``. Harness progress keeps its
    own handle on the terminal (:class:`CellProgress`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    streams = sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        # Python's own streams too, where they are not backed by fds 1 and 2 (under pytest).
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = streams
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            sink.seek(0)
            lines = sink.read().decode("utf-8", errors="replace").splitlines()
            tail[:] = lines[-OUTPUT_TAIL_LINES:]
