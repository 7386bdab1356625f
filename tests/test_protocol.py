"""Protocol v2 (``mlx_parity.protocol``), one test per feature, through the real harness
(``run_seed``) with tiny plugins defined here and named ``plugin:test_protocol:<function>``.

The plugins leave what they saw in ``SEEN`` (this module is the one the harness imports: tests/
is on ``sys.path`` under pytest), and the tests read it back.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

from mlx_parity.artifact import SeedResult, save
from mlx_parity.cell import OUTPUT_TAIL_LINES, UNSEEDED_STATE, run_seed
from mlx_parity.collect.markdown import render_markdown
from mlx_parity.commands.collect import collect_round
from mlx_parity.evaluate import evaluate
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs, apply
from mlx_parity.matrix import Catalog, ResolvedProbe, Round, resolve
from mlx_parity.probes import BUILTIN_PROBES, Probe
from mlx_parity.protocol import PluginError, TrainRequest
from mlx_parity.trainers import lookup

SEEN: dict[str, object] = {}
KNOBS = Knobs(steps=2, batch_size=2, lr=3e-4)
SEED = 7


def run(model_source, function: str, knobs: Knobs = KNOBS, seed: int = SEED, **options):
    spec = f"plugin:test_protocol:{function}"
    probe = ResolvedProbe(
        Probe(id=function, trainer=spec, options=options), lookup(spec), knobs, "any"
    )
    return run_seed("protocol", probe, SMOKE, model_source, seed)


def report_steps(request: TrainRequest, n: int | None = None) -> None:
    """Report ``n`` (default: every) micro-step of a trainer that trains nothing."""
    for step in range(1, (n or request.micro_steps) + 1):
        request.report_step(step, loss=1.0, ntoks=4, input_shape=(1, 5))


@pytest.fixture(autouse=True)
def clear_seen():
    SEEN.clear()


# --- the plugins ------------------------------------------------------------------------------


def loads_its_own(request: TrainRequest):
    SEEN["model_path"] = request.model_path
    model, tokenizer = request.load()
    SEEN["fresh"] = model is not request.model and tokenizer is not None
    SEEN["dtypes"] = {p.dtype for _, p in tree_flatten(model.parameters())}
    report_steps(request)
    return model


def returns_a_changed_model(request: TrainRequest):
    model, _ = request.load()
    model.update(tree_map(lambda p: p * 0.5, model.parameters()))
    SEEN["model"] = model
    report_steps(request)
    return model


def trains_nothing(request: TrainRequest) -> None:
    report_steps(request)


def draws_random_numbers(request: TrainRequest) -> None:
    draws = (random.random(), float(np.random.rand()), mx.random.uniform().item())
    SEEN[request.seed] = draws
    report_steps(request)


def counts_steps(request: TrainRequest) -> None:
    SEEN["counts"] = (request.micro_steps, request.optimizer_steps)
    report_steps(request)


def mlx_lm_loop(request: TrainRequest) -> None:
    """mlx-lm's own trainer, watched by the observer (what the reference trainer does)."""
    from mlx_lm.tuner import trainer as mlx_trainer
    from mlx_lm.tuner.datasets import CacheDataset, TextDataset
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from mlx_parity.core.setup import build_optimizer, lora_config

    s = request.settings
    mx.random.seed(request.seed)
    request.model.freeze()
    linear_to_lora_layers(request.model, s.num_layers, lora_config(s))
    watch = request.mlx_lm()
    dataset = CacheDataset(TextDataset([{"text": t} for t in request.texts], request.tokenizer))
    with tempfile.TemporaryDirectory() as out:
        args = mlx_trainer.TrainingArgs(
            batch_size=s.batch_size,
            iters=s.steps,
            steps_per_report=1,
            steps_per_eval=10**9,
            max_seq_length=s.max_seq_length,
            adapter_file=f"{out}/adapters.safetensors",
            grad_accumulation_steps=s.grad_accum,
        )
        mlx_trainer.train(
            model=request.model,
            optimizer=watch.optimizer(build_optimizer(s)),
            train_dataset=dataset,
            args=args,
            iterate_batches=watch.iterate_batches(),
            training_callback=watch,
        )


def hand_loop(request: TrainRequest) -> None:
    """A loop of its own with a loss function it can wrap: five micro-steps, two per update."""

    def loss_fn(model, batch, lengths):
        return batch.sum().astype(mx.float32), lengths[:, 1].sum()

    loss_fn = request.watch_loss(loss_fn)
    for step in range(1, 6):
        batch = mx.full((2, 4 + step), step, dtype=mx.int32)
        loss_fn(request.model, batch, mx.array([[0, step], [0, 3]]))
        if step % 2 == 0:
            request.update(lr=step / 10, grad_norm=float(step))
    # The fifth micro-step is left in a partial window: the harness reports it.


def echoes_options(request: TrainRequest) -> None:
    SEEN["options"] = dict(request.options)
    report_steps(request)


def declares_clip(request: TrainRequest) -> None:
    request.cannot_honour("clip", "clips at 1.0, always")
    trains_nothing(request)


def prints_then_fails(request: TrainRequest) -> None:
    print("stdout line from the plugin")
    for i in range(60):
        print(f"progress {i}", flush=True)
    os.write(1, b"native stdout line\n")
    print("stderr line from the plugin", file=sys.stderr)
    report_steps(request, 1)
    _fails_deep_inside()


def _fails_deep_inside() -> None:
    raise RuntimeError("the trainer broke")


# --- the features -----------------------------------------------------------------------------


def test_model_path_and_load(model_source) -> None:
    result = run(model_source, "loads_its_own", apply(KNOBS, {"dtype": "float16"}))
    assert result.status == "ok", result.error
    assert SEEN["model_path"] == model_source.path
    assert SEEN["fresh"]  # a model of its own, not the harness's
    assert SEEN["dtypes"] == {mx.float16}  # cast to settings.dtype like the harness's


def test_the_model_a_plugin_returns_is_evaluated(model_source) -> None:
    changed = run(model_source, "returns_a_changed_model")
    untouched = run(model_source, "trains_nothing")
    own = evaluate(SEEN["model"], model_source.tokenizer(), SMOKE, KNOBS.max_new_tokens)
    assert changed.cf_loss == own.cf_loss
    assert changed.cf_loss != untouched.cf_loss


def test_python_and_numpy_are_seeded_and_mlx_is_not(model_source) -> None:
    for seed in (1, 2):
        assert run(model_source, "draws_random_numbers", seed=seed).status == "ok"
    mx.random.seed(UNSEEDED_STATE)
    unseeded = mx.random.uniform().item()
    for seed in (1, 2):
        python, numpy, mlx = SEEN[seed]
        assert python == random.Random(seed).random()
        assert numpy == np.random.RandomState(seed).rand()
        assert mlx == unseeded  # the same fixed state whatever the seed


def test_micro_steps_and_optimizer_steps(model_source) -> None:
    result = run(model_source, "counts_steps", apply(KNOBS, {"steps": 5, "grad_accum": 2}))
    assert SEEN["counts"] == (5, 2)  # a trailing partial window is never applied
    assert len(result.rows) == 5


def test_the_mlx_lm_observer_reports_what_the_reference_reports(model_source) -> None:
    knobs = apply(KNOBS, {"steps": 4, "grad_accum": 2})
    result = run(model_source, "mlx_lm_loop", knobs)
    assert result.status == "ok", result.error
    reference = run_seed(
        "protocol",
        ResolvedProbe(Probe(id="reference"), lookup("reference"), knobs, "any"),
        SMOKE,
        model_source,
        SEED,
    )
    assert result.rows == reference.rows
    assert [tuple(r["input_shape"]) for r in result.rows] == [(2, 33)] * 4
    assert all(r["ntoks"] > 0 and r["batch"] for r in result.rows)
    assert [r["grad_norm"] is not None for r in result.rows] == [False, True, False, True]
    assert [r["updates"] for r in result.rows] == [0, 1, 1, 2]


def test_watch_loss_and_update(model_source) -> None:
    result = run(model_source, "hand_loop")
    assert result.status == "ok", result.error
    rows = result.rows
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == [2 * s * (4 + s) for s in range(1, 6)]
    assert [r["ntoks"] for r in rows] == [s + 3 for s in range(1, 6)]
    assert [tuple(r["input_shape"]) for r in rows] == [(2, 4 + s) for s in range(1, 6)]
    assert [r["grad_norm"] for r in rows] == [None, 2.0, None, 4.0, None]
    assert [r["lr"] for r in rows[:4]] == [0.2, 0.2, 0.4, 0.4]
    assert [r["updates"] for r in rows] == [0, 1, 1, 2, 2]
    assert len({r["batch"] for r in rows}) == 5


def test_watch_loss_inside_mx_compile_is_a_plugin_error() -> None:
    request = TrainRequest(None, None, [], KNOBS, SEED)
    loss_fn = request.watch_loss(lambda model, batch, lengths: (batch.sum(), lengths.sum()))
    step = mx.compile(lambda batch, lengths: loss_fn(None, batch, lengths)[0])
    with pytest.raises(PluginError, match="ran inside mx.compile"):
        step(mx.ones((2, 4)), mx.array([[0, 4], [0, 3]]))


def test_update_without_watch_loss_and_an_unknown_knob_are_plugin_errors() -> None:
    request = TrainRequest(None, None, [], KNOBS, SEED)
    with pytest.raises(PluginError, match="without watch_loss"):
        request.update(1e-3, 1.0)
    with pytest.raises(PluginError, match="unknown knob 'clipping'"):
        request.cannot_honour("clipping", "no such knob")


def test_options_reach_the_plugin(model_source) -> None:
    run(model_source, "echoes_options", defaults=True, note="x")
    assert SEEN["options"] == {"defaults": True, "note": "x"}


def test_cannot_honour_is_recorded_and_reported(model_source, tmp_path: Path) -> None:
    catalog = Catalog(
        probes={
            **BUILTIN_PROBES,
            "declares": Probe(id="declares", trainer="plugin:test_protocol:declares_clip"),
        }
    )
    round_ = resolve(
        Round(
            id="protocol",
            hypothesis="a declared setting is reported",
            probes=["reference", "declares"],
            seeds=[SEED],
            settings={"steps": 2, "batch_size": 2},
        ),
        catalog,
    )
    results: dict[str, SeedResult] = {}
    for probe_id, probe in round_.probes.items():
        results[probe_id] = run_seed(round_.id, probe, round_.fixture, model_source, SEED)
        save(results[probe_id], tmp_path)
    assert results["declares"].unhonoured == {"clip": "clips at 1.0, always"}
    assert results["reference"].unhonoured == {}
    report = collect_round(tmp_path, round_)
    declared = next(p for p in report.probes if p.id == "declares")
    assert declared.unhonoured == {"clip": "clips at 1.0, always"}
    row = next(line for line in render_markdown(report).splitlines() if "`declares`" in line)
    assert "cannot honour: clip" in row


def test_a_failing_plugin_leaves_its_traceback_and_output_tail(
    model_source, capfd, monkeypatch
) -> None:
    # As in a process of its own (not pytest's capture objects), Python's streams write to the
    # file descriptors the harness redirects; capfd sees whatever reaches them outside it.
    for name, fd in (("stdout", 1), ("stderr", 2)):
        monkeypatch.setattr(sys, name, open(fd, "w", buffering=1, closefd=False))  # noqa: SIM115
    capfd.readouterr()
    result = run(model_source, "prints_then_fails")
    terminal = capfd.readouterr()
    assert result.status == "error" and not result.passed
    assert result.error.startswith("Traceback (most recent call last):")
    assert "in _fails_deep_inside" in result.error  # the full traceback, not just the message
    assert result.error.splitlines()[-1] == "RuntimeError: the trainer broke"
    # Python and native output, stdout and stderr, in order; only the last lines are kept.
    tail = result.output_tail.splitlines()
    assert len(tail) == OUTPUT_TAIL_LINES
    assert tail[-3:] == ["progress 59", "native stdout line", "stderr line from the plugin"]
    assert "stdout line from the plugin" not in tail
    for line in ("stdout line from the plugin", "native stdout line", "stderr line", "progress"):
        assert line not in terminal.out + terminal.err
    assert [row["step"] for row in result.rows] == [1]
