"""Trainer plugins: a detection suite of user-style trainers, each with one defect, probed through
the real harness on the discriminating fixture, plus the plugin protocol's failure modes.

The candidates live in ``examples/candidates/candidates.py`` and are named
``plugin:candidates:...``; each in-knob-space candidate must reproduce the core with the
matching knob bit for bit, and the one defect outside the knob space (a cosine schedule) must
match no single-knob variant.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import inspect
import math
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import probe_of, use_plugins
from mlx_parity import artifact
from mlx_parity.artifact import SeedResult
from mlx_parity.cell import run_cell, run_seed
from mlx_parity.knobs import BEHAVIOUR_KNOBS, apply
from mlx_parity.matrix import resolve_round
from mlx_parity.protocol import PluginError, TrainRequest, load_plugin
from mlx_parity.steps import StepOrderError
from mlx_parity.trainers import ENTRY_POINT_GROUP, TrainerError, lookup

use_plugins()  # plugin specs read plugin:candidates:<function>

MATRIX = Path(__file__).parents[1] / "matrix"
ROUND = resolve_round("discriminate", MATRIX)
BASE = ROUND.probe("core").knobs
SEED = ROUND.seeds[0]

# candidate -> (the discriminate round's probe for the same defect, if it has one; the core
# knob change)
IN_KNOB_SPACE: dict[str, tuple[str | None, dict]] = {
    "train_mlx_lm": ("core", {}),
    "train_pad_no_plus_one": ("pad-multiple", {"padding": "multiple"}),
    "train_exclusive_mask": ("mask-exclusive", {"loss_mask": "exclusive"}),
    "train_legacy_clip": ("clip-legacy", {"clip": "value:1"}),
    "train_no_seed": ("no-seed", {"seed_after_load": False}),
    "train_token_accumulation": ("accum-token", {"accum_norm": "token"}),
    "train_bias_correction_flipped": (
        "no-bias-correction",
        {"bias_correction": not BASE.bias_correction},
    ),
    "train_float16": ("fp16", {"dtype": "float16"}),
    "train_all_layers": ("layers-all", {"num_layers": -1}),
    "train_summed_accumulation": (None, {"grad_scale": 2.0}),
    "train_halved_gradients": (None, {"grad_scale": 0.5}),
    "train_reshuffled": (None, {"batch_order": "reshuffle"}),
    "train_with_replacement": (None, {"batch_order": "replacement"}),
    "train_validation_first": (None, {"val_draws_rng": True}),
    "train_ignores_accumulation": (None, {"accumulate": False}),
    "train_leaf_norm_clip": (None, {"clip": "leaf_norm:1"}),
    "train_mlx_adamw_defaults": (None, {"optimizer_defaults": "mlx"}),
    "train_alpha_over_rank": (None, {"lora_scale_rule": "alpha_over_rank"}),
    "train_seeded_after_lora": (None, {"seed_after_load": False}),
    "train_warmup_off_by_one": (
        None,
        {"warmup_offset": 1, "schedule": "linear_warmup", "warmup_steps": 3},
    ),
}
OUTSIDE_KNOB_SPACE = "train_cosine_schedule"
# Correct, but rounds differently: no knob, and not bit for bit mlx-lm either.
EQUIVALENT_CONTROL = "train_reordered_loss"


@pytest.fixture(scope="session")
def trace(tmp_path_factory, model_source) -> Callable[..., SeedResult]:
    """One seed of a trainer through the real harness on the discriminating fixture, with a knob
    change. Traces are deterministic, so each runs once per session: the artifact lands in a
    directory the xdist workers share, and a lock per trace keeps two workers from both running
    it."""
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    out_dir = shared / "plugin-traces"
    out_dir.mkdir(exist_ok=True)

    def run(trainer: str, overrides: dict | None = None) -> SeedResult:
        knobs = apply(BASE, overrides or {})
        digest = hashlib.sha256(f"{trainer} {knobs.model_dump_json()}".encode()).hexdigest()
        probe_id = f"{trainer.rpartition(':')[2].replace('_', '-')}-{digest[:12]}"
        path = out_dir / artifact.artifact_name(ROUND.id, probe_id, SEED)
        with open(out_dir / f"{probe_id}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                probe = probe_of(probe_id, trainer, knobs)
                result = run_seed(ROUND.id, probe, ROUND.fixture, model_source, SEED)
                assert result.status == "ok", result.error
                assert result.trainer == trainer
                assert len(result.rows) == knobs.steps
                artifact.save(result, out_dir)
        return artifact.load(path)

    return run


def losses(result: SeedResult) -> list[float]:
    return [row["loss"] for row in result.rows]


# What a plugin reporting its steps directly (report_step) records per step: the candidates
# report every signal, the optional batch and update count included.
REPORTED = list(inspect.signature(TrainRequest.report_step).parameters)[1:]


def reported(result: SeedResult) -> list[dict]:
    """Every step's record, as far as a plugin reports it."""
    return [{name: row.get(name) for name in REPORTED} for row in result.rows]


# --- the detection suite --------------------------------------------------------------------


def test_each_candidate_names_a_probe_of_the_discriminating_round() -> None:
    candidates = importlib.import_module("candidates")
    assert {n for n in vars(candidates) if n.startswith("train_")} == {
        *IN_KNOB_SPACE,
        OUTSIDE_KNOB_SPACE,
        EQUIVALENT_CONTROL,
    }
    assert ROUND.fixture.model == "embedded"  # the model the model_source fixture loads
    for name, (probe_id, overrides) in IN_KNOB_SPACE.items():
        if probe_id is None:
            continue
        assert probe_id in ROUND.probes, name
        probe_knobs = ROUND.probe(probe_id).knobs
        assert probe_knobs.differing_from(apply(BASE, overrides)) == {}, name


@pytest.mark.parametrize("candidate", list(IN_KNOB_SPACE))
def test_candidate_equals_its_core_variant_bitwise(trace, candidate) -> None:
    _, overrides = IN_KNOB_SPACE[candidate]
    # Settings (a warmup schedule) go to the candidate too; behaviour knobs only to the core.
    settings = {k: v for k, v in overrides.items() if k not in BEHAVIOUR_KNOBS}
    plugin = trace(f"plugin:candidates:{candidate}", settings)
    core = trace("core", overrides)
    # Bitwise: exact float equality of every step's loss, then of everything else reported.
    assert losses(plugin) == losses(core)
    assert reported(plugin) == reported(core)
    # The plugin ran on the round's settings.
    assert plugin.config == apply(BASE, settings).model_dump(mode="json")
    if overrides:  # the fixture discriminates: the defect is visible in the trace
        assert losses(core) != losses(trace("core", settings))


def test_the_reordered_control_is_not_bitwise_but_keeps_every_structural_signal(trace) -> None:
    control, core = trace(f"plugin:candidates:{EQUIVALENT_CONTROL}"), trace("core")
    assert losses(control) != losses(core)
    assert max(abs(a - b) for a, b in zip(losses(control), losses(core), strict=True)) < 1e-4
    structure = ("input_shape", "ntoks", "batch", "updates")
    assert [[r[k] for k in structure] for r in control.rows] == [
        [r[k] for k in structure] for r in core.rows
    ]


def test_token_accumulation_without_accumulation_is_mlx_lm(trace) -> None:
    # With grad_accum = 1 there is nothing to weigh: the core (and so the candidate) is mlx-lm.
    single = {"grad_accum": 1, "steps": 4}
    plugin = trace("plugin:candidates:train_token_accumulation", single)
    assert reported(plugin) == reported(trace("core", single))


def test_cosine_schedule_matches_no_single_knob_variant(trace) -> None:
    cosine = trace(f"plugin:candidates:{OUTSIDE_KNOB_SPACE}")
    mlx_lm = trace("core")
    # cosine_decay(lr, steps) is exactly lr at the first update, so the trace follows mlx-lm's
    # until the second update has been applied.
    second_update = 2 * BASE.grad_accum
    assert losses(cosine)[:second_update] == losses(mlx_lm)[:second_update]
    assert cosine.rows[second_update - 1]["lr"] < BASE.lr
    from_step_2 = losses(cosine)[1:]
    for name, (_, overrides) in IN_KNOB_SPACE.items():
        variant = trace("core", overrides)
        assert from_step_2 != losses(variant)[1:], f"the cosine trace is {name}'s core variant"


# --- the protocol ---------------------------------------------------------------------------


AFTER_NAN: list[int] = []


def _reports_a_skipped_step(request: TrainRequest) -> None:
    request.report_step(1, loss=1.0, ntoks=4, input_shape=(1, 5))
    request.report_step(3, loss=1.0, ntoks=4, input_shape=(1, 5))


def _reports_a_step_twice(request: TrainRequest) -> None:
    request.report_step(1, loss=1.0, ntoks=4, input_shape=(1, 5))
    request.report_step(1, loss=1.0, ntoks=4, input_shape=(1, 5))


def _reports_nan(request: TrainRequest) -> None:
    request.report_step(1, loss=2.0, ntoks=4, input_shape=(1, 5))
    request.report_step(2, loss=float("nan"), ntoks=4, input_shape=(1, 5), grad_norm=1.0)
    AFTER_NAN.append(3)  # never reached: a non-finite loss ends training
    request.report_step(3, loss=1.0, ntoks=4, input_shape=(1, 5))


def _reports_nothing(request: TrainRequest) -> None:
    pass


def _one_step(request: TrainRequest) -> None:
    request.report_step(1, loss=1.0, ntoks=4, input_shape=(1, 5))


def _exits(request: TrainRequest) -> None:
    _one_step(request)
    sys.exit(0)  # a trainer shaped like `sys.exit(main())`


def _returns_a_history(request: TrainRequest) -> dict:
    _one_step(request)
    return {"losses": [1.0]}


def _loads_its_own_and_returns_nothing(request: TrainRequest) -> None:
    request.load()
    _one_step(request)


@pytest.fixture
def fake_plugins(monkeypatch) -> str:
    """A module of misbehaving plugins, importable as ``fake_plugins``."""
    module = types.ModuleType("fake_plugins")
    module.skips = _reports_a_skipped_step
    module.repeats = _reports_a_step_twice
    module.nan = _reports_nan
    module.silent = _reports_nothing
    module.exits = _exits
    module.history = _returns_a_history
    module.own = _loads_its_own_and_returns_nothing
    module.not_a_function = 42
    monkeypatch.setitem(sys.modules, "fake_plugins", module)
    AFTER_NAN.clear()
    return "plugin:fake_plugins"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("plugin:no_such_plugin_module:train", "cannot import 'no_such_plugin_module'"),
        ("plugin:candidates:train_missing", "module 'candidates' has no 'train_missing'"),
        ("plugin:candidates:PAD_TO", "is not callable"),
        ("plugin:fake_plugins:not_a_function", "is not callable"),
        ("plugin:no-such-entry-point", "no entry point 'no-such-entry-point' in group"),
    ],
)
def test_a_bad_spec_is_a_trainer_error_naming_it(fake_plugins, spec, reason) -> None:
    trainer = lookup(spec)  # a well-formed name: checked for form only, nothing imported yet
    assert trainer.is_plugin and trainer.name == spec
    with pytest.raises(TrainerError) as info:
        trainer.load()
    assert isinstance(info.value, PluginError)
    assert repr(spec) in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "spec", ["plugin:", "plugin:a:b:c", "plugin:module:", "plugin:with space", "mine", "Core"]
)
def test_a_malformed_trainer_name_is_refused_without_importing(spec) -> None:
    with pytest.raises(TrainerError, match="trainer") as info:
        lookup(spec)
    assert repr(spec) in str(info.value)


def test_a_bad_spec_fails_the_cell_before_any_seed(tmp_path, model_source) -> None:
    probe = probe_of("missing", "plugin:candidates:train_missing", BASE)
    with pytest.raises(TrainerError, match="train_missing"):
        run_cell(ROUND.id, probe, ROUND.fixture, [SEED], tmp_path, source=model_source)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("skips", "step 3 reported, expected step 2"),
        ("repeats", "step 1 reported, expected step 2"),
    ],
)
def test_a_step_out_of_order_is_the_seeds_error(
    fake_plugins, model_source, function, message
) -> None:
    spec = f"{fake_plugins}:{function}"
    train = lookup(spec).load()
    with pytest.raises(StepOrderError, match=message):
        train(None, None, [], BASE, SEED)
    result = run_seed(ROUND.id, probe_of(function, spec, BASE), ROUND.fixture, model_source, SEED)
    assert result.status == "error" and not result.passed
    assert result.error.splitlines()[-1] == f"mlx_parity.steps.StepOrderError: {message}"
    assert [row["step"] for row in result.rows] == [1]  # the steps reported in order are kept


def test_a_nonfinite_loss_is_recorded_and_stops_the_plugin(fake_plugins, model_source) -> None:
    probe = probe_of("nan", f"{fake_plugins}:nan", BASE)
    result = run_seed(ROUND.id, probe, ROUND.fixture, model_source, SEED)
    assert result.status == "nonfinite" and result.error is None
    assert [row["step"] for row in result.rows] == [1, 2]
    assert result.rows[0]["loss"] == 2.0 and math.isnan(result.rows[1]["loss"])
    assert AFTER_NAN == []
    assert not result.passed


def test_a_plugin_that_reports_nothing_is_an_error(fake_plugins, model_source) -> None:
    probe = probe_of("silent", f"{fake_plugins}:silent", BASE)
    result = run_seed(ROUND.id, probe, ROUND.fixture, model_source, SEED)
    assert result.status == "error"
    # The full traceback is recorded; its last line names the error.
    assert result.error.startswith("Traceback (most recent call last)")
    assert result.error.splitlines()[-1] == (
        "mlx_parity.protocol.PluginError: the plugin reported no step"
    )
    assert result.rows == []


def test_an_entry_point_plugin_is_found_by_name(tmp_path, monkeypatch) -> None:
    dist = tmp_path / "parity_candidates-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: parity-candidates\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nparity-mlx-lm = candidates:train_mlx_lm\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()

    candidates = importlib.import_module("candidates")
    assert load_plugin("plugin:parity-mlx-lm") is candidates.train_mlx_lm
    assert callable(lookup("plugin:parity-mlx-lm").load())
    with pytest.raises(TrainerError, match=r"installed: .*parity-mlx-lm"):
        lookup("plugin:parity-mlx-lm-typo").load()


@pytest.mark.parametrize(
    ("function", "last_line"),
    [
        ("exits", "the trainer called sys.exit(0): a plugin must return instead"),
        (
            "history",
            "mlx_parity.protocol.PluginError: the plugin returned a dict, not a model: return "
            "None, or the model it loaded with request.load() and trained",
        ),
        (
            "own",
            "mlx_parity.protocol.PluginError: the plugin loaded its own model with "
            "request.load() but returned none: return it, so that the harness evaluates the "
            "model that was trained",
        ),
    ],
)
def test_a_plugin_that_exits_or_returns_no_model_is_the_seeds_error(
    fake_plugins, model_source, function, last_line
) -> None:
    probe = probe_of(function, f"{fake_plugins}:{function}", BASE)
    result = run_seed(ROUND.id, probe, ROUND.fixture, model_source, SEED)
    assert result.status == "error" and not result.passed
    assert result.error_summary == last_line


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise RuntimeError('no GPU found')", "(RuntimeError: no GPU found)"),
        ("def broken(:\n", "(SyntaxError: invalid syntax"),
    ],
)
def test_a_plugin_whose_import_raises_is_a_plugin_error(
    tmp_path, monkeypatch, source, reason
) -> None:
    (tmp_path / "raising_plugin.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "raising_plugin", raising=False)
    with pytest.raises(PluginError) as info:
        lookup("plugin:raising_plugin:train").load()
    assert f"cannot import 'raising_plugin' {reason}" in str(info.value)
