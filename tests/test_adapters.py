"""The published trainers' adapters (``src/mlx_parity/adapters/``), each run through the real
harness on the embedded model for a few micro-steps: every step is recorded, the facts their
research established hold where they are cheap to check, and the defaults modes differ.

The trainers are installed in CI (``runner/peers-linux.txt`` on Linux, ``mlx-parity[peers]`` on
macOS); without them the module is skipped.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from importlib import metadata
from pathlib import Path

import pytest

PACKAGES = ("unsloth_zoo", "mlx_tune", "mlx_lm_lora")
if missing := [p for p in PACKAGES if importlib.util.find_spec(p) is None]:
    pytest.skip(
        f"published trainers not installed: {', '.join(missing)} (on Linux: pip install "
        "--no-deps -r runner/peers-linux.txt && pip install -r runner/peers-linux-deps.txt)",
        allow_module_level=True,
    )

from mlx_parity.artifact import SeedResult  # noqa: E402
from mlx_parity.cell import run_seed  # noqa: E402
from mlx_parity.knobs import apply  # noqa: E402
from mlx_parity.matrix import ResolvedProbe, resolve_round  # noqa: E402
from mlx_parity.probes import Probe  # noqa: E402
from mlx_parity.protocol import PluginError  # noqa: E402
from mlx_parity.steps import StopTraining  # noqa: E402
from mlx_parity.trainers import ENTRY_POINT_GROUP, lookup  # noqa: E402

MATRIX = Path(__file__).parents[1] / "matrix"
SMOKE = resolve_round("peers", MATRIX)  # the embedded model on the smoke fixture
VARIED = resolve_round("peers-discriminate", MATRIX)  # rows of different lengths, grad_accum 2
TRAINERS = ("unsloth-zoo", "mlx-tune", "mlx-lm-lora")
SEED = 7
STEPS = 4


@pytest.fixture(scope="module")
def run(model_source):
    """One seed of a trainer through ``run_seed``, cached per worker: ``run(trainer,
    overrides, defaults=False, varied=False)``, on the smoke fixture unless ``varied``."""
    cache: dict[str, SeedResult] = {}

    def train(trainer, overrides=None, *, defaults=False, varied=False, on_step=None):
        round_ = VARIED if varied else SMOKE
        knobs = apply(round_.probe("core").knobs, {"steps": STEPS, **(overrides or {})})
        spec = trainer if trainer in ("core", "reference") else f"plugin:{trainer}"
        options = {"defaults": True} if defaults else {}
        probe = ResolvedProbe(
            Probe(id="p", trainer=spec, options=options), lookup(spec), knobs, "any"
        )
        key = f"{spec} {options} {varied} {knobs.model_dump_json()}"
        if on_step is None and key in cache:
            return cache[key]
        # Both fixtures train the embedded model.
        result = run_seed(round_.id, probe, round_.fixture, model_source, SEED, on_step)
        assert result.status == "ok", result.error
        if on_step is None:
            cache[key] = result
        return result

    return train


def losses(result: SeedResult) -> list[float]:
    return [row["loss"] for row in result.rows]


def updated(result: SeedResult) -> list[int]:
    """The steps that carry a gradient norm: those that end with an optimizer update."""
    return [row["step"] for row in result.rows if row["grad_norm"] is not None]


def test_the_adapters_are_registered_entry_points() -> None:
    found = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name in TRAINERS:
        assert found[name] == f"mlx_parity.adapters.{name.replace('-', '_')}:train"
    for probe in ("", "-defaults"):
        assert all(f"{name}{probe}" in SMOKE.probes for name in TRAINERS)


@pytest.mark.parametrize("defaults", [False, True], ids=["faithful", "defaults"])
@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_micro_step_is_recorded(run, trainer, defaults) -> None:
    result = run(trainer, defaults=defaults)
    assert [row["step"] for row in result.rows] == list(range(1, STEPS + 1))
    assert result.options == ({"defaults": True} if defaults else {})  # what it was given
    for row in result.rows:
        assert math.isfinite(row["loss"]) and row["ntoks"] > 0 and row["batch"]
        assert tuple(row["input_shape"]) == (SMOKE.probe("core").knobs.batch_size, 33)
    # unsloth-zoo's own default accumulates 4 micro-steps per update; the rest update each step.
    assert updated(result) == (
        [4] if (trainer, defaults) == ("unsloth-zoo", True) else [1, 2, 3, 4]
    )
    assert all(row["grad_norm"] > 0 for row in result.rows if row["grad_norm"] is not None)
    if defaults:  # its own defaults are not the round's settings: nothing to declare
        assert result.unhonoured == {}
        assert losses(result) != losses(run(trainer))


def test_unsloth_zoo_is_the_core_with_the_exclusive_mask(run) -> None:
    plugin, core = run("unsloth-zoo"), run("core", {"loss_mask": "exclusive"})
    assert list(plugin.unhonoured) == ["loss_mask"]
    assert losses(plugin) == pytest.approx(losses(core), rel=0, abs=1e-5)
    for mine, theirs in zip(plugin.rows, core.rows, strict=True):
        assert (mine["ntoks"], mine["input_shape"], mine["batch"]) == (
            theirs["ntoks"],
            theirs["input_shape"],
            theirs["batch"],
        )
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-5)


def test_unsloth_zoo_weighs_accumulated_gradients_by_tokens(run) -> None:
    plugin = run("unsloth-zoo", varied=True)  # grad_accum 2 over batches of different lengths
    core = run("core", {"loss_mask": "exclusive", "accum_norm": "token"}, varied=True)
    assert set(plugin.unhonoured) == {"loss_mask", "accum_norm"}
    assert losses(plugin) == pytest.approx(losses(core), rel=0, abs=1e-5)
    assert updated(plugin) == updated(core) == [2, 4]
    assert [r["batch"] for r in plugin.rows] == [r["batch"] for r in core.rows]


def test_unsloth_zoo_stops_inside_a_trailing_window_and_closes_windows_at_epoch_ends(run) -> None:
    # 3 micro-steps at 2 per update: the third is trained on, never applied.
    tail = run("unsloth-zoo", {"steps": 3, "grad_accum": 2})
    core = run("core", {"steps": 3, "grad_accum": 2, "loss_mask": "exclusive"})
    assert updated(tail) == [2] and [r["updates"] for r in tail.rows] == [0, 1, 1]
    assert losses(tail) == pytest.approx(losses(core), rel=0, abs=1e-5)
    # 64 rows in batches of 6 make 10 batches an epoch: the 10th closes a window of 2, so three
    # updates of 4 take 10 micro-steps, not 12; the adapter says so.
    epoch = run("unsloth-zoo", {"steps": 12, "grad_accum": 4})
    assert updated(epoch) == [4, 8, 10] and len(epoch.rows) == 10
    assert "grad_accum" in epoch.unhonoured


def test_mlx_tune_ignores_accumulation_and_bias_correction(run) -> None:
    plugin = run("mlx-tune", {"grad_accum": 2})
    assert set(plugin.unhonoured) == {"grad_accum", "bias_correction", "seed_after_load"}
    assert updated(plugin) == [1, 2, 3, 4]  # every micro-step updates
    assert [row["updates"] for row in plugin.rows] == [1, 2, 3, 4]
    core = run("core", {"grad_accum": 1, "bias_correction": False, "seed_after_load": False})
    assert plugin.rows == core.rows


def test_mlx_lm_lora_is_the_core_without_seeding(run) -> None:
    plugin = run("mlx-lm-lora", {"grad_accum": 2})
    assert list(plugin.unhonoured) == ["seed_after_load"]
    assert plugin.rows == run("core", {"grad_accum": 2, "seed_after_load": False}).rows


def test_mlx_lm_lora_draws_each_batch_from_a_fresh_permutation(run) -> None:
    # Four distinct batches an epoch: mlx-lm's two epochs use each twice, mlx-lm-lora does not.
    batches = [row["batch"] for row in run("mlx-lm-lora", {"steps": 8}, varied=True).rows]
    reference = [row["batch"] for row in run("reference", {"steps": 8}, varied=True).rows]
    assert sorted(set(reference)) == sorted(set(batches) | set(reference))
    assert sorted(reference.count(b) for b in set(reference)) == [2, 2, 2, 2]
    assert sorted(batches.count(b) for b in set(batches)) != [2, 2, 2, 2]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_an_adapter_stops_when_training_must_stop(run, trainer) -> None:
    def stop_at_2(record) -> None:
        if record.step == 2:
            raise StopTraining

    result = run(trainer, on_step=stop_at_2)
    assert [row["step"] for row in result.rows] == [1, 2]


def test_a_missing_trainer_package_cannot_be_imported(monkeypatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "mlx_lm_lora"] + ["mlx_lm_lora"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "mlx_parity.adapters.mlx_lm_lora", raising=False)
    with pytest.raises(PluginError, match="cannot import"):
        lookup("plugin:mlx-lm-lora").load()
