"""The detection suite: ten candidate trainers, each mlx-lm but for one hidden defect (or none,
or one outside the knob space). ``explain`` must name each defect from the candidate's seed
results, ``bisect`` between core and the matching probe must name the same knob, and neither
may force an answer where there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import probe_of, use_plugins
from mlx_parity.cell import run_cell
from mlx_parity.commands.explain import measured_allowance
from mlx_parity.diagnose.bisect import bisect
from mlx_parity.diagnose.explain import context_from, explain, targets_from
from mlx_parity.diagnose.space import Change, baseline_of
from mlx_parity.diagnose.traces import TraceRunner
from mlx_parity.knobs import apply
from mlx_parity.matrix import ResolvedRound, resolve_round
from mlx_parity.traces import Allowance

use_plugins()  # the candidates (plugin:candidates:<function>) and their table

from detection_cases import CASES, ROUND, SEEDS, Case  # noqa: E402


@pytest.fixture(scope="session")
def discriminate() -> ResolvedRound:
    return resolve_round(ROUND)


@pytest.fixture(scope="session")
def runner(discriminate, model_source) -> TraceRunner:
    # One runner per worker: the base and single-knob traces are shared by every candidate.
    return TraceRunner(discriminate.fixture, model_source)


@pytest.fixture(scope="session")
def floor(discriminate, runner) -> Allowance:
    """The noise floor explain measures for every candidate (they share one base)."""
    base = baseline_of(discriminate.probe("core").knobs)
    return measured_allowance(runner, base, list(SEEDS))


# What explain must say it saw in a candidate's own seed results, before any search.
SIGNALS = {
    "train_pad_no_plus_one": "batch shape (4, 32) vs (4, 33)",
    "train_exclusive_mask": "target tokens (the loss mask?)",
    "train_halved_gradients": "gradient norm 0.5× (gradients scaled by 1/2) at the first update",
    "train_summed_accumulation": "gradient norm 2× (gradients scaled by 2) at the first update",
    "train_reshuffled": "from step 2: other rows or another order in the batch",
    "train_ignores_accumulation": "optimizer updates so far (gradient accumulation)",
}


def candidate_results(case: Case, discriminate: ResolvedRound, model_source, out: Path):
    settings = apply(discriminate.probe("core").knobs, dict(case.settings))
    probe = probe_of(case.function.replace("_", "-"), case.trainer, settings)
    fixture = discriminate.fixture
    results = run_cell(ROUND, probe, fixture, list(SEEDS), out, source=model_source)
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert all(r.trainer == case.trainer for r in results)
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.function for c in CASES])
def test_explain_names_the_hidden_defect(case, discriminate, model_source, runner, floor, tmp_path):
    results = candidate_results(case, discriminate, model_source, tmp_path)
    base, _ = context_from(results)
    explanation = explain(runner, base, targets_from(results, len(SEEDS)), floor)
    if not case.explained:
        assert explanation.matched is None
        assert explanation.headline().startswith("unexplained")
        assert explanation.closest.divergence is not None
        # Closest by the whole trace: no single change or tried combination is nearer.
        assert explanation.closest.distance is not None and explanation.closest.distance > 0
    elif case.equivalent:
        assert explanation.matched == () and explanation.matched_verdict == "equivalent"
        assert explanation.headline().startswith("equivalent to the core at mlx-lm's values")
        assert "within the noise floor" in explanation.headline()
    elif case.defect is None:
        assert explanation.matched == () and explanation.matched_verdict == "identical"
        assert explanation.headline().startswith("identical to the core")
    else:
        assert explanation.matched == (Change(*case.defect),), explanation.report()
        assert Change(*case.defect).describe() in explanation.headline()
    if case.function in SIGNALS:
        assert any(SIGNALS[case.function] in line for line in explanation.signals), (
            explanation.report()
        )
    # The discriminating fixture makes every defect class visible.
    assert explanation.invisible == []
    assert explanation.seeds == list(SEEDS)


@pytest.mark.parametrize("case", [c for c in CASES if c.probe], ids=lambda c: c.probe)
def test_bisect_between_core_and_the_matching_probe_names_the_same_knob(case, discriminate, runner):
    core = discriminate.probe("core").knobs
    target = discriminate.probe(case.probe).knobs
    result = bisect(runner, core, target, list(SEEDS[:2]), from_id="core", to_id=case.probe)
    assert result.b_diverges
    assert result.culprit == (Change(*case.defect),), result.report()


def test_bisect_finds_the_one_knob_that_matters_among_several(discriminate, runner):
    # legacy-trainer differs from core in three knobs, each visible on this fixture: the
    # smallest reproducing set is all three, each contributing (not an interaction: each
    # diverges alone).
    core = discriminate.probe("core").knobs
    legacy = discriminate.probe("legacy-trainer").knobs
    result = bisect(runner, core, legacy, [1], from_id="core", to_id="legacy-trainer")
    assert set(result.culprit) == {
        Change("clip", "value:1"),
        Change("padding", "multiple"),
        Change("seed_after_load", False),
    }
    assert "each diverge from core alone, but none alone reproduces" in result.report()
    assert "interaction" not in result.report()
    assert len(result.singles) == 3 and not any(s.reproduces_b for s in result.singles)


def test_bisect_reports_an_inert_difference(model_source):
    # Without accumulation, token-weighted accumulation changes nothing at all: nothing to name.
    smoke = resolve_round("smoke")
    runner = TraceRunner(smoke.fixture, model_source)
    core = smoke.probe("core").knobs.model_copy(update={"steps": 3})
    result = bisect(runner, core, core.model_copy(update={"accum_norm": "token"}), [1])
    assert not result.b_diverges and result.culprit is None
    assert "inert" in result.report()
    assert "cannot see: accum_norm=token" in result.report()


def test_bisect_sees_a_batch_shape_even_where_every_loss_agrees(model_source):
    # On the smoke fixture (13-token rows) multiple padding changes no loss, but every batch is
    # one column narrower: a difference bisect names.
    smoke = resolve_round("smoke")
    runner = TraceRunner(smoke.fixture, model_source)
    core = smoke.probe("core").knobs.model_copy(update={"steps": 3})
    result = bisect(runner, core, core.model_copy(update={"padding": "multiple"}), [1])
    assert result.b_diverges and result.culprit == (Change("padding", "multiple"),)
    assert "step 1: batch shape (6, 32) vs (6, 33)" in result.report()


def test_bisect_cli_writes_a_confirming_round(tmp_path, capsys):
    import shutil

    from mlx_parity.cli import main

    matrix = tmp_path / "matrix"
    shutil.copytree(Path(__file__).parent.parent / "matrix", matrix)
    argv = ["bisect", "--round", ROUND, "--matrix", str(matrix), "--quiet", "--seeds", "1"]
    argv += ["--from", "core", "--to", "legacy-trainer", "--write-round", "confirm-legacy"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "culprit: clip=value:1, padding=multiple, seed_after_load=false each diverge" in out
    confirming = resolve_round("confirm-legacy", matrix)
    catalog = confirming.catalog
    probe_ids = list(confirming.probes)
    assert probe_ids[:3] == ["reference", "core", "legacy-trainer"]
    original = resolve_round(ROUND, matrix)
    assert confirming.fixture == original.fixture
    assert confirming.probe("core").knobs == original.probe("core").knobs  # same settings
    # One probe per differing knob: existing catalog probes reused, the missing one added.
    singles = {catalog.get(p).knobs.get("clip") or str(catalog.get(p).knobs) for p in probe_ids[3:]}
    assert len(probe_ids) == 6 and "value:1" in singles
    # Writing the same round again is refused rather than overwriting it.
    assert main(argv) == 2


def test_bisect_refuses_a_non_core_probe(capsys):
    from mlx_parity.cli import main

    assert main(["bisect", "--round", ROUND, "--from", "reference", "--to", "core"]) == 2
    assert "both probes must be core probes" in capsys.readouterr().err


def test_explain_cli_calls_the_reordered_control_equivalent(
    discriminate, model_source, tmp_path, capsys
):
    from mlx_parity.cli import main

    case = next(c for c in CASES if c.equivalent)
    candidate_results(case, discriminate, model_source, tmp_path)
    assert main(["explain", str(tmp_path), "--quiet", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "equivalent to the core at mlx-lm's values (within the noise floor, seeds 1)" in out
