"""explain's and bisect's searches over scripted traces: which configuration they report, and
why, without training (tests/test_detection.py covers the same searches on real trainers); and
the refusals both commands make before any training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import make_result, make_round, write
from mlx_parity.cli import main
from mlx_parity.collect.report import report_json
from mlx_parity.commands.collect import collect_round
from mlx_parity.commands.explain import load_candidate
from mlx_parity.diagnose.explain import explain
from mlx_parity.diagnose.space import Change, applied
from mlx_parity.errors import ExitCode
from mlx_parity.knobs import Knobs
from mlx_parity.matrix import MATRIX_ENV, packaged_matrix_dir

STEPS = 8
SEEDS = (1, 2)


def rows(losses: list[float]) -> list[dict]:
    return [
        dict(step=i + 1, loss=loss, grad_norm=1.0, ntoks=12, input_shape=(2, 8), lr=1e-3)
        for i, loss in enumerate(losses)
    ]


def target_losses(seed: int) -> list[float]:
    return [2.0 + seed + 0.125 * i for i in range(STEPS)]


def parting_at(seed: int, step: int) -> list[float]:
    """The target's losses, one higher from ``step`` on."""
    return [loss + (1.0 if i + 1 >= step else 0.0) for i, loss in enumerate(target_losses(seed))]


class ScriptedRunner:
    """Hands out a chosen trace per (configuration, seed); every other configuration gives the
    base's trace, which parts from the target at step 1."""

    def __init__(self, scripted: dict[tuple[str, int], list[float]]):
        self.scripted = scripted
        self.steps_trained = 0

    def trace(self, knobs: Knobs, seed: int, target=None, allowance=0.0) -> list[dict]:
        losses = self.scripted.get((key(knobs), seed), parting_at(seed, 1))
        self.steps_trained += len(losses)
        return rows(losses)


def key(knobs: Knobs) -> str:
    return knobs.model_copy(update={"steps": 0}).model_dump_json()


def test_a_trace_shorter_than_its_recorded_steps_is_not_explained_away() -> None:
    """A trainer that reports 6 of its 8 steps: the core trains the 8 the seed recorded, so the
    search finds a length divergence rather than calling the short trace identical."""

    class Faithful(ScriptedRunner):  # the core, whatever the knobs: the target's own losses
        def trace(self, knobs: Knobs, seed: int, target=None, allowance=0.0) -> list[dict]:
            self.steps_trained += knobs.steps
            return rows(target_losses(seed)[: knobs.steps])

    targets = {seed: rows(target_losses(seed)[:6]) for seed in SEEDS}
    explanation = explain(Faithful({}), Knobs(steps=STEPS), targets)
    assert explanation.matched is None
    assert "trace length 8 vs 6 steps" in explanation.headline()


def test_unexplained_names_where_the_closest_configuration_failed_confirmation() -> None:
    # Two single changes each reproduce seed 1 and fail on seed 2, at different steps. The
    # closest (the first, by distance then search order) must be reported with *its* failing
    # step, not that of the last configuration confirmed.
    base = Knobs(steps=STEPS)
    a = Change("seed_after_load", not base.seed_after_load)
    b = Change("bias_correction", not base.bias_correction)
    scripted = {}
    for change, fails_at in ((a, 5), (b, 3)):
        scripted[(key(applied(base, (change,))), 1)] = target_losses(1)
        scripted[(key(applied(base, (change,))), 2)] = parting_at(2, fails_at)
    targets = {seed: rows(target_losses(seed)) for seed in SEEDS}

    explanation = explain(ScriptedRunner(scripted), base, targets)

    assert explanation.matched is None
    assert explanation.closest.changes == (a,)
    assert explanation.closest.comparison.step == 5
    headline = explanation.headline()
    assert headline.startswith("unexplained:")
    assert "seed_after_load=" in headline and "departs at step 5: loss by 1" in headline


def test_a_configuration_confirmed_on_every_seed_is_the_answer() -> None:
    base = Knobs(steps=STEPS)
    a = Change("bias_correction", not base.bias_correction)
    scripted = {(key(applied(base, (a,))), seed): target_losses(seed) for seed in SEEDS}
    targets = {seed: rows(target_losses(seed)) for seed in SEEDS}

    explanation = explain(ScriptedRunner(scripted), base, targets)

    assert explanation.matched == (a,)
    assert explanation.headline().startswith("behaves like core with bias_correction=")


def test_explain_reads_a_round_folder_without_complaining_about_its_report(tmp_path, capsys):
    round_ = make_round(probes=("reference", "mask"))
    write(tmp_path, make_result("reference", 1), make_result("mask", 1))
    (tmp_path / "report.json").write_text(report_json(collect_round(tmp_path, round_), None))
    (tmp_path / "broken.json").write_text("{")
    assert [r.probe_id for r in load_candidate(tmp_path, "mask")] == ["mask"]
    err = capsys.readouterr().err
    assert "report.json" not in err and "broken.json" in err  # a broken file is still named


def test_signals_are_read_on_every_seed_and_name_the_seeds_that_show_them() -> None:
    from mlx_parity.diagnose.explain import seed_signals
    from mlx_parity.traces import Allowance

    base = {seed: rows(target_losses(seed)) for seed in SEEDS}
    targets = {1: rows(parting_at(1, 3)), 2: rows(parting_at(2, 5))}
    # Seed 2's batches are one column wider from step 2: structure, on that seed alone.
    for row in targets[2][1:]:
        row["input_shape"] = (2, 9)
    signals = seed_signals(base, targets, Allowance.of(0.0))
    assert signals == [
        "from step 3: loss by 1 (seed 1)",
        "from step 2: batch shape (2, 9) vs (2, 8) (seed 2)",
        "from step 5: loss by 1 (seed 2)",
    ]
    same = seed_signals(base, {s: rows(parting_at(s, 4)) for s in SEEDS}, Allowance.of(0.0))
    assert same == ["from step 4: loss by 1 (seeds 1, 2)"]


def test_explain_keeps_one_of_identical_copies_and_neither_of_different_results(
    tmp_path, capsys
) -> None:
    (tmp_path / "a").mkdir()
    write(tmp_path, make_result("mask", 1), make_result("mask", 42))
    write(tmp_path / "a", make_result("mask", 1))  # the same result, downloaded twice
    assert [r.seed for r in load_candidate(tmp_path, "mask")] == [1, 42]
    write(tmp_path / "a", make_result("mask", 42, cf_loss=0.5))  # another result for seed 42
    assert [r.seed for r in load_candidate(tmp_path, "mask")] == [1]
    assert "skipped seed 42: 2 different results" in capsys.readouterr().err


@pytest.mark.parametrize("tolerance", ["nan", "-1", "inf"])
def test_explain_refuses_a_tolerance_that_is_not_a_finite_allowance(tolerance, capsys) -> None:
    assert main(["explain", "anywhere", "--tolerance", tolerance]) == ExitCode.USAGE
    assert "use a finite number ≥ 0" in capsys.readouterr().err


# --- bisect: A = Knobs(steps=STEPS), scripted to the target's losses -------------------------

X = Change("bias_correction", False)
Y = Change("seed_after_load", False)


def scripted_bisection(parts_alone_at: dict[Change, int | None], tolerance: float = 0.0, to_id="B"):
    """Bisect A against A with every change in ``parts_alone_at``: each change alone parts from
    A at the step given (None: not at all); B, which no subset but all reproduces, two higher."""
    from mlx_parity.diagnose.bisect import bisect

    a = Knobs(steps=STEPS)
    b = applied(a, tuple(parts_alone_at))
    scripted = {}
    for seed in SEEDS:
        scripted[(key(a), seed)] = target_losses(seed)
        scripted[(key(b), seed)] = [loss + 2.0 for loss in target_losses(seed)]
        for change, step in parts_alone_at.items():
            alone = parting_at(seed, step) if step else target_losses(seed)
            scripted[(key(applied(a, (change,))), seed)] = alone
    return bisect(ScriptedRunner(scripted), a, b, list(SEEDS), tolerance, "A", to_id)


@pytest.mark.parametrize(
    ("parts_alone_at", "verdict"),
    [
        # Each knob moves A's trace alone: each contributes, nothing is an interaction.
        (
            {X: 3, Y: 5},
            "bias_correction=false, seed_after_load=false each diverge from A alone, but none "
            "alone reproduces B; together they do",
        ),
        # Inert alone, effective together: an interaction.
        (
            {X: None, Y: None},
            "the interaction of bias_correction=false, seed_after_load=false — no single knob "
            "reproduces B, only these together do",
        ),
        # Mixed: the verdict names the knob that diverges alone.
        (
            {X: 3, Y: None},
            "the interaction of bias_correction=false, seed_after_load=false — no single knob "
            "reproduces B, only these together do (bias_correction=false diverges from A "
            "alone; seed_after_load=false only together with the others)",
        ),
    ],
    ids=["each-contributes", "interaction", "mixed"],
)
def test_bisect_calls_only_knobs_inert_alone_an_interaction(parts_alone_at, verdict) -> None:
    from mlx_parity.commands.bisect import _hypothesis

    result = scripted_bisection(parts_alone_at)
    assert result.culprit == (X, Y)
    assert f"culprit: {verdict}\n" in result.report()
    # The round --write-round writes states the same finding.
    assert _hypothesis(result) == f"From A to B: {verdict}."


def test_bisect_states_how_it_compares() -> None:
    assert ", compared bit for bit: " in scripted_bisection({X: 3}).report()
    assert ", compared within 0.5 per step: " in scripted_bisection({X: 3}, 0.5).report()


def test_bisect_aligns_every_row_of_its_table() -> None:
    # The "(all: B)" row is longer than any knob's: every row's second column still lines up.
    report = scripted_bisection({X: 3, Y: 5}, to_id="a-probe-with-a-long-name").report()
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if "knob alone" in line)
    table = lines[start : lines.index("", start)]
    column = table[0].index("first divergence")
    assert len(table) == 4
    assert all(row[column - 2 : column] == "  " and row[column] != " " for row in table), report


@pytest.mark.parametrize("tolerance", ["nan", "-1", "inf"])
def test_bisect_refuses_a_tolerance_that_is_not_a_finite_allowance(tolerance, capsys) -> None:
    argv = ["bisect", "--round", "anything", "--from", "a", "--to", "b", "--tolerance", tolerance]
    assert main(argv) == ExitCode.USAGE
    assert "use a finite number ≥ 0" in capsys.readouterr().err


@pytest.fixture
def no_bisection_runs(monkeypatch):
    """Fail the test if bisect gets as far as training."""
    import mlx_parity.diagnose.bisect

    def trains(*args, **kwargs):
        raise AssertionError("bisect trained before refusing")

    monkeypatch.setattr(mlx_parity.diagnose.bisect, "bisect", trains)


DEMO = ["bisect", "--round", "demo", "--from", "pad-multiple", "--to", "mask-exclusive"]


@pytest.mark.usefixtures("no_bisection_runs")
def test_bisect_refuses_an_existing_or_invalid_round_id_before_training(tmp_path, capsys):
    matrix = tmp_path / "matrix"
    shutil.copytree(Path(__file__).parent.parent / "matrix", matrix)
    argv = [*DEMO, "--matrix", str(matrix), "--write-round"]
    assert main([*argv, "demo"]) == ExitCode.USAGE
    assert "demo.toml exists already" in capsys.readouterr().err
    assert main([*argv, "../elsewhere"]) == ExitCode.USAGE
    assert "round ID '../elsewhere' is not valid" in capsys.readouterr().err


@pytest.mark.usefixtures("no_bisection_runs")
def test_bisect_refuses_to_write_a_round_into_the_installed_package(tmp_path, monkeypatch, capsys):
    # No matrix/ above the working directory and none named: the matrix in use is the package's.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MATRIX_ENV, raising=False)
    assert main([*DEMO, "--write-round", "mine"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "the matrix in use is the one installed with mlx-parity" in err
    assert "run from your repository" in err and "--matrix" in err
    assert not (packaged_matrix_dir() / "rounds" / "mine.toml").exists()


def test_closest_is_nearest_over_every_seed_not_the_first_alone() -> None:
    # a reproduces seed 1 exactly but parts from seed 2 at step 1; b parts from both seeds only
    # at the last step. On seed 1 alone a reads 0 away; over both seeds b is the nearer.
    base = Knobs(steps=STEPS)
    a = Change("seed_after_load", not base.seed_after_load)
    b = Change("bias_correction", not base.bias_correction)
    scripted = {(key(applied(base, (a,))), 1): target_losses(1)}
    for seed in SEEDS:
        scripted[(key(applied(base, (b,))), seed)] = parting_at(seed, STEPS)
    targets = {seed: rows(target_losses(seed)) for seed in SEEDS}

    explanation = explain(ScriptedRunner(scripted), base, targets)

    assert explanation.closest.changes == (b,)
    assert explanation.closest.distance == pytest.approx(30 / STEPS)  # log10(1 + 1/1e-30)
    assert f"departs at step {STEPS}: loss by 1 (distance 3.8)" in explanation.headline()
    assert "allowances apart" not in explanation.report()
    assert "distance: the mean over seeds and steps" in explanation.report()


class StubExplanation:
    matched = ()

    def report(self) -> str:
        return "stub explanation"


@pytest.fixture
def searched(monkeypatch) -> list[Knobs]:
    """explain's search replaced by a stub that records the base it was given (no training)."""
    import mlx_parity.cell
    import mlx_parity.diagnose.explain
    import mlx_parity.diagnose.traces

    bases: list[Knobs] = []

    def stub_explain(runner, base, targets, allowance, progress):
        progress("base configuration")
        bases.append(base)
        return StubExplanation()

    class NoModel:
        def __init__(self, path: str) -> None:
            pass

        def tokenizer(self) -> None:
            pass

    monkeypatch.setattr(mlx_parity.cell, "ModelSource", NoModel)
    monkeypatch.setattr(mlx_parity.diagnose.traces, "TraceRunner", lambda *args: None)
    monkeypatch.setattr(mlx_parity.diagnose.explain, "explain", stub_explain)
    return bases


def trained_at(lr: float, seed: int):
    result = make_result("mask", seed)
    return result.model_copy(update={"config": {**result.config, "lr": lr}})


def test_explain_refuses_seeds_trained_under_different_settings(tmp_path, capsys, searched):
    write(tmp_path, trained_at(3e-4, 1), trained_at(4e-4, 42))
    assert main(["explain", str(tmp_path), "--tolerance", "0"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert (
        "seeds 1, 42 trained under different settings: lr 0.0003 (seed 1), 0.0004 (seed 42)" in err
    )
    assert not searched
    # One of them alone is one set of settings: the search starts from that seed's.
    assert main(["explain", str(tmp_path), "--seeds", "42", "--tolerance", "0"]) == ExitCode.OK
    assert [base.lr for base in searched] == [4e-4]


def test_explain_names_the_selected_seeds_that_errored(tmp_path, capsys, searched) -> None:
    failed = make_result("mask", 42, status="error", error="Traceback …\nValueError: boom")
    write(tmp_path, make_result("mask", 1), failed)
    assert main(["explain", str(tmp_path), "--seeds", "42"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "no usable seed results: seed 42 errored (ValueError: boom)" in err
    assert "usable: seed 1" in err


def test_quiet_leaves_stderr_empty_on_success(tmp_path, capsys, searched) -> None:
    write(tmp_path, make_result("mask", 1))
    assert main(["explain", str(tmp_path), "--tolerance", "0"]) == ExitCode.OK
    err = capsys.readouterr().err
    assert "explaining mask" in err and "… base configuration" in err
    assert main(["explain", str(tmp_path), "--tolerance", "0", "--quiet"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert captured.err == "" and "stub explanation" in captured.out
