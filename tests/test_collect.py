"""The collector on synthetic seed results: no training, no MLX computation.

Order convention under test: every "x vs y" in a report is probe first, baseline second.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import (
    ENVIRONMENT,
    ROUND,
    SEEDS_15,
    collect,
    full_round,
    make_result,
    make_round,
    trace,
    write,
)
from mlx_parity.artifact import SeedResult, artifact_name, save, write_atomic
from mlx_parity.cli import main
from mlx_parity.collect import html as html_report
from mlx_parity.collect.compare import RoundReport
from mlx_parity.collect.gather import gather
from mlx_parity.collect.html import render_html
from mlx_parity.collect.markdown import (
    DETAILS_END,
    DETAILS_START,
    SUMMARY_HEADERS,
    divergence_text,
    fit_summary,
    render_markdown,
    summary_cells,
)
from mlx_parity.collect.report import build_statuses, parse_report, report_json
from mlx_parity.collect.terminal import render_terminal
from mlx_parity.commands.collect import ReportOutputs, collect_and_report, collect_round
from mlx_parity.commands.compare import UNCHANGED, compare_reports, load_report
from mlx_parity.errors import UsageError
from mlx_parity.matrix import ResolvedRound
from mlx_parity.names import probe_context, round_context
from mlx_parity.noise import NoiseSample


@pytest.fixture(autouse=True)
def outside_github_actions(monkeypatch):
    """Run as on a laptop even inside a workflow: no job summary to append to, no run URL."""
    for variable in [v for v in os.environ if v.startswith("GITHUB_")]:
        monkeypatch.delenv(variable)


# --- factories -------------------------------------------------------------------------------


# --- trace ladder ----------------------------------------------------------------------------


def test_identical_traces_are_identical(tmp_path):
    round_ = make_round(probes=("reference", "twin"))
    full_round(tmp_path, round_)
    report = collect(tmp_path, round_)
    twin = report.probe("twin")
    assert [s.trace for s in twin.seeds] == ["identical"] * 3
    assert twin.seeds[0].trace_detail == "identical over 30 steps"
    assert twin.seeds[0].structural is None
    assert twin.trace_counts() == {"identical": 3}
    assert report.passed
    assert "identical 3/3" in render_markdown(report)


def test_structural_divergence_names_step_and_shapes_probe_first(tmp_path):
    round_ = make_round(probes=("reference", "pad"))
    overrides = {("pad", s): make_result("pad", s, shape=(6, 32)) for s in round_.seeds}
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    pad = report.probe("pad")
    expected = "structural divergence at step 1: batch shape (6, 32) vs (6, 33)"
    assert all(s.structural == expected for s in pad.seeds)
    assert pad.first_structural().structural_step == 1
    # The losses are bitwise equal, yet the batches differ: the verdict is structure first,
    # and its detail says the losses agree.
    assert pad.trace_counts() == {"diverges": 3}
    assert pad.seeds[0].trace_detail == (
        "diverges at step 1: batch shape (6, 32) vs (6, 33) (losses identical over 30 steps)"
    )
    assert expected in render_markdown(report)
    # A plot's caption says the structural first divergence once.
    caption = f"<figcaption>seed 1: {pad.seeds[0].trace_detail}</figcaption>"
    assert caption in render_html(report)


def test_structural_divergence_in_token_count_and_later_step(tmp_path):
    round_ = make_round(probes=("reference", "pad"), seeds=(1,))
    changed = make_result("pad", 1, shapes={4: (6, 65)})
    full_round(tmp_path, round_, {("pad", 1): changed})
    seed = collect(tmp_path, round_).probe("pad").seeds[0]
    assert seed.structural == "structural divergence at step 4: batch shape (6, 65) vs (6, 33)"

    ntoks_dir = tmp_path / "ntoks"
    full_round(ntoks_dir, round_, {("pad", 1): make_result("pad", 1, ntoks=90)})
    seed = collect(ntoks_dir, round_).probe("pad").seeds[0]
    assert (
        seed.structural
        == "structural divergence at step 1: 90 vs 96 target tokens (the loss mask?)"
    )


def test_divergence_reported_with_step_and_size(tmp_path):
    round_ = make_round(probes=("reference", "clip"), seeds=(1, 7))
    losses = trace(1)
    losses[6] = losses[6] + 0.0123
    full_round(tmp_path, round_, {("clip", 1): make_result("clip", 1, losses=losses)})
    report = collect(tmp_path, round_)
    clip = report.probe("clip")
    seed = clip.seeds[0]
    assert seed.trace == "diverges"
    # The verdict names the signal that parted, as it does a gradient norm or a batch shape.
    assert seed.trace_detail == "diverges at step 7: loss by 0.0123"
    assert seed.divergence_step == 7
    assert seed.divergence_size == pytest.approx(0.0123, rel=1e-6)
    assert clip.trace_counts() == {"diverges": 1, "identical": 1}
    markdown = render_markdown(report)
    assert "step 7: loss by 0.0123 (seed 1)" in markdown
    assert "diverges 1/2, identical 1/2" in markdown


def test_close_within_tolerance_and_diverges_without(tmp_path):
    round_ = make_round(probes=("reference", "near"), seeds=(1,), trace_tolerance=1e-6)
    losses = [loss + 5e-7 for loss in trace(1)]
    full_round(tmp_path, round_, {("near", 1): make_result("near", 1, losses=losses)})
    report = collect(tmp_path, round_)
    seed = report.probe("near").seeds[0]
    assert seed.trace == "close"
    assert seed.trace_detail.startswith("close over 30 steps")
    assert seed.max_abs_dloss == pytest.approx(5e-7, rel=1e-3)
    assert report.passed  # expect "close" holds

    strict = make_round(probes=("reference", "near"), seeds=(1,), trace_tolerance=0.0)
    report = collect(tmp_path, strict)
    assert report.probe("near").seeds[0].trace_detail.startswith("diverges at step 1: loss by")
    assert not report.passed
    assert [g.name for g in report.failed_gates()] == ["parity"]


def test_nonfinite_losses_match_only_at_the_same_step(tmp_path):
    round_ = make_round(probes=("reference", "twin", "clip"), seeds=(1,))
    nan_at_9 = trace(1)
    nan_at_9[8:] = [math.nan] * 22
    nan_at_12 = trace(1)
    nan_at_12[11:] = [math.nan] * 19

    def nan_run(probe: str, losses: list[float]) -> SeedResult:
        return make_result(
            probe, 1, losses=losses, status="nonfinite", cf_loss=math.nan, passed=False
        )

    full_round(
        tmp_path,
        round_,
        {
            ("reference", 1): nan_run("reference", nan_at_9),
            ("twin", 1): nan_run("twin", nan_at_9),
            ("clip", 1): nan_run("clip", nan_at_12),
        },
    )
    report = collect(tmp_path, round_)
    assert report.probe("twin").seeds[0].trace == "identical"
    clip = report.probe("clip").seeds[0]
    assert clip.trace == "diverges" and clip.divergence_step == 9
    assert "loss" in clip.trace_detail and "nan" in clip.trace_detail
    # Its largest |Δloss| is where one loss is NaN and the other is not, not the 0 before it;
    # the twin's NaN steps match, so its largest is 0.
    assert clip.max_abs_dloss == math.inf and report.probe("twin").seeds[0].max_abs_dloss == 0
    # NaN cf_loss fails the smoke gate; the NaN runs are named among the problems.
    smoke = {g.probe: g.passed for g in report.gates if g.name == "smoke"}
    assert smoke == {"reference": False, "twin": False, "clip": False}
    nonfinite = [p.subject for p in report.problems if p.kind == "run-nonfinite"]
    assert artifact_name(ROUND, "twin", 1) in nonfinite
    # The JSON stays strict: NaN written as a string, never a bare token.
    text = report_json(report)
    json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in JSON"))
    assert '"NaN"' in text


def test_trace_length_mismatch_diverges(tmp_path):
    round_ = make_round(probes=("reference", "clip"), seeds=(1,))
    full_round(tmp_path, round_, {("clip", 1): make_result("clip", 1, losses=trace(1, 29))})
    seed = collect(tmp_path, round_).probe("clip").seeds[0]
    assert seed.trace == "diverges"
    assert seed.trace_detail == "diverges at step 30: trace length 29 vs 30 steps"


# --- outcome statistics ------------------------------------------------------------------------


def passes_10_of_15_vs_8_of_15(directory: Path, round_: ResolvedRound) -> None:
    """Baseline passes seeds 0-9; the probe loses 7, 8, 9 and gains 10 (3 lost, 1 gained)."""
    overrides = {}
    for index, seed in enumerate(SEEDS_15):
        overrides[("reference", seed)] = make_result("reference", seed, passed=index < 10)
        overrides[("core", seed)] = make_result("core", seed, passed=index < 7 or index == 10)
    full_round(directory, round_, overrides)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval from its closed form (independent of the code under test)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def exact_mcnemar(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p by enumerating Binomial(lost + gained, 1/2)."""
    n, k = lost + gained, min(lost, gained)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_outcome_statistics_against_independent_values(tmp_path):
    round_ = make_round(seeds=SEEDS_15)
    passes_10_of_15_vs_8_of_15(tmp_path, round_)
    report = collect(tmp_path, round_)
    core, baseline = report.probe("core"), report.probe("reference")
    outcome = core.outcome
    assert (outcome.n, outcome.agreements, outcome.passes_lost, outcome.passes_gained) == (
        15,
        11,
        3,
        1,
    )
    assert outcome.lost_seeds == (1234, 3407, 5678) and outcome.gained_seeds == (9012,)
    # 3 lost, 1 gained: 2 · (C(4,0) + C(4,1)) / 2^4 = 10/16.
    assert outcome.mcnemar_p == pytest.approx(0.625, abs=1e-12)
    assert outcome.mcnemar_p == pytest.approx(exact_mcnemar(3, 1), abs=1e-12)
    assert core.pass_ci == pytest.approx(wilson(8, 15), abs=1e-12)
    assert baseline.pass_ci == pytest.approx(wilson(10, 15), abs=1e-12)
    assert core.verdict == "no difference detected (p=0.625)" and not core.outcome_differs
    markdown = render_markdown(report)
    assert "10/15 = 67% (42%–85%)" in markdown
    assert "8/15 = 53% (30%–75%)" in markdown
    assert "| 11/15 " in markdown  # agreement
    assert "0.625 (0.625)" in markdown  # one probe: Holm changes nothing
    assert "with 15 seeds" in markdown


def test_holm_is_applied_across_probes_excluding_baseline(tmp_path):
    round_ = make_round(probes=("reference", "core", "twin", "clip"), seeds=SEEDS_15)
    overrides = {}
    for index, seed in enumerate(SEEDS_15):
        overrides[("core", seed)] = make_result("core", seed, passed=index >= 6)
        overrides[("twin", seed)] = make_result("twin", seed, passed=index >= 2)
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    raw = {p.id: p.outcome.mcnemar_p for p in report.compared_probes()}
    # Every baseline seed passes; core fails 6 seeds, twin 2, clip none (one-way flips).
    expected_raw = {"core": exact_mcnemar(6, 0), "twin": exact_mcnemar(2, 0), "clip": 1.0}
    assert raw == pytest.approx(expected_raw, abs=1e-12)
    # Holm by hand: sorted 2/64 (×3), 0.5 (×2), 1.0 (×1), each at least the one before.
    expected_holm = {"core": 3 * 2 / 64, "twin": max(3 * 2 / 64, 2 * 0.5), "clip": 1.0}
    for probe in report.compared_probes():
        assert probe.holm_p == pytest.approx(expected_holm[probe.id], abs=1e-12)
    assert report.probe("reference").holm_p is None
    assert report.probe("core").holm_p > report.probe("core").outcome.mcnemar_p
    # 6 lost: p=0.031 → 0.094 after Holm, so nothing is claimed.
    assert report.probe("core").verdict == "no difference detected (p=0.0938)"
    assert "Holm over 3 probes" in render_markdown(report)


# --- gates and exit codes ----------------------------------------------------------------------


def test_smoke_gate_fails_on_one_seed_and_exits_1(tmp_path):
    round_ = make_round()
    full_round(tmp_path, round_, {("core", 7): make_result("core", 7, cf_loss=0.7)})
    out = tmp_path / "out"
    status = collect_and_report(tmp_path, round_, quiet=True, outputs=ReportOutputs.beside(out))
    assert status == 1
    report = load_report(out)
    failed = report.failed_gates()
    assert [(g.name, g.probe) for g in failed] == [("smoke", "core")]
    assert "seed 7 (0.7)" in failed[0].detail
    assert report.probe("core").state == "failure"
    assert report.probe("reference").state == "success"


def test_all_gates_hold_exits_0_and_writes_reports(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    round_ = make_round()
    artifacts = tmp_path / "artifacts"
    full_round(artifacts, round_)
    out = tmp_path / "out"
    status = collect_and_report(artifacts, round_, quiet=True, outputs=ReportOutputs.beside(out))
    assert status == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "report.html"}
    assert summary.read_text() == (out / "report.md").read_text()


def test_parity_expectations(tmp_path):
    round_ = make_round(probes=("reference", "twin", "mask"), seeds=(1, 7))
    full_round(tmp_path, round_)
    report = collect(tmp_path, round_)
    parity = {g.probe: g for g in report.gates if g.name == "parity"}
    assert parity["twin"].passed
    # "diverges" needs at least one diverging seed; identical traces fail it.
    assert not parity["mask"].passed
    assert parity["mask"].detail == "expects diverges: identical 2/2"


def test_faults_are_listed_by_name_and_nothing_crashes(tmp_path, capsys):
    round_ = make_round(seeds=(1, 7, 42, 123))
    directory = tmp_path / "download"
    nested = directory / "T1-core-0"
    full_round(
        directory,
        round_,
        {
            ("core", 42): None,  # missing
            ("core", 123): None,  # written below as a NaN run, nested
            ("reference", 7): None,  # written below twice with different contents
        },
    )
    save(make_result("core", 123, status="nonfinite", cf_loss=math.nan, passed=False), nested)
    first, second = directory / "dup-a", directory / "dup-b"
    save(make_result("reference", 7), first)
    save(make_result("reference", 7, passed=False), second)
    # An identical copy of a kept artifact: one is kept, the copy noted.
    save(make_result("reference", 1), directory / "copy")
    truncated = directory / artifact_name(ROUND, "core", 999)
    truncated.write_text(make_result("core", 999).to_json()[:200])
    wrong_schema = json.loads(make_result("core", 5).to_json())
    wrong_schema["schema"] = "mlx-parity/seed-result/v0"
    (directory / "old.json").write_text(json.dumps(wrong_schema))
    boolean_seed = json.loads(make_result("core", 5).to_json()) | {"seed": True}
    (directory / "true.json").write_text(json.dumps(boolean_seed))  # not seed 1
    save(make_result("core", 1, round_id="OTHER"), directory / "other")
    save(make_result("ghost", 1), directory)  # a probe the round lacks
    save(make_result("core", 8), directory)  # a seed the round lacks
    (directory / "binary.json").write_bytes(b"\xff\xfe\x00{")  # not UTF-8
    (directory / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # beyond recursion

    report = collect(directory, round_)
    by_kind: dict[str, list[str]] = {}
    for problem in report.problems:
        by_kind.setdefault(problem.kind, []).append(problem.subject)
    assert by_kind["missing"] == ["reference seed 7", "core seed 42"]
    assert by_kind["invalid"] == [
        truncated.name,
        "binary.json",
        "deep.json",
        "old.json",
        "true.json",
    ]
    reference_7, reference_1 = (
        artifact_name(ROUND, "reference", 7),
        artifact_name(ROUND, "reference", 1),
    )
    assert by_kind["duplicate"] == [f"dup-a/{reference_7}, dup-b/{reference_7}"]
    # Files are read in sorted path order; the first copy is the one kept.
    assert by_kind["duplicate-identical"] == [f"{reference_1}, copy/{reference_1}"]
    assert by_kind["other-round"] == [f"other/{artifact_name('OTHER', 'core', 1)}"]
    assert by_kind["unknown-probe"] == [artifact_name(ROUND, "ghost", 1)]
    assert by_kind["unknown-seed"] == [artifact_name(ROUND, "core", 8)]
    assert by_kind["run-nonfinite"] == [f"T1-core-0/{artifact_name(ROUND, 'core', 123)}"]
    invalid = {p.subject: p.detail for p in report.problems if p.kind == "invalid"}
    assert "not valid JSON" in invalid[truncated.name]
    assert "mlx-parity/seed-result/v0" in invalid["old.json"]

    # Every one of them reaches the Markdown and the HTML by name.
    markdown, page = render_markdown(report), render_html(report)
    for subject in (s for subjects in by_kind.values() for s in subjects):
        assert subject in markdown
        assert subject in page
    gates = {(g.name, g.probe): g.passed for g in report.gates}
    assert gates[("artifacts", None)] is False
    assert gates[("artifacts", "core")] is False
    assert gates[("smoke", "core")] is False  # the NaN run's cf_loss
    assert report.probe("core").seeds[2].status == "missing"

    status = collect_and_report(
        directory, round_, quiet=True, outputs=ReportOutputs(json=tmp_path / "r.json")
    )
    assert status == 1
    json.loads((tmp_path / "r.json").read_text(), parse_constant=pytest.fail)


def test_a_missing_cell_names_the_paths_that_claim_it(tmp_path):
    round_ = make_round(seeds=(1, 7))
    directory = tmp_path / "download"
    full_round(directory, round_, {("reference", 7): None, ("core", 7): None, ("core", 1): None})
    # A file named for reference seed 7 that holds core seed 1 (renamed by hand, say): the
    # result counts where it belongs, and reference seed 7's absence names the file.
    misnamed = directory / artifact_name(ROUND, "reference", 7)
    misnamed.write_text(make_result("core", 1).to_json())
    # A folder named like core seed 7's artifact (an unzip gone wrong): read through, named.
    (directory / "job" / artifact_name(ROUND, "core", 7)).mkdir(parents=True)

    report = collect(directory, round_)
    missing = {p.subject: p.detail for p in report.problems if p.kind == "missing"}
    assert missing == {
        "reference seed 7": f"no valid artifact ({misnamed.name} holds core seed 1)",
        "core seed 7": f"no valid artifact (job/{artifact_name(ROUND, 'core', 7)} is a folder)",
    }
    assert report.probe("core").seeds[0].status != "missing"  # core seed 1 was used


def test_a_probe_that_could_not_be_judged_is_an_error_not_a_failure(tmp_path):
    """No baseline seed, or no seed of a probe at all: the trainer was not judged, so its status
    says the round could not be judged (error) rather than that the trainer failed parity."""
    round_ = make_round(probes=("reference", "twin"), seeds=(1, 7))
    full_round(tmp_path / "no-baseline", round_, {("reference", s): None for s in (1, 7)})
    full_round(tmp_path / "no-probe", round_, {("twin", s): None for s in (1, 7)})
    for case in ("no-baseline", "no-probe"):
        report = collect(tmp_path / case, round_)
        assert {p.id: p.state for p in report.probes} == {
            "reference": "error" if case == "no-baseline" else "success",
            "twin": "error",
        }
        assert build_statuses(report)[-1].state == "error"
    # A judged failure still wins: the probe's one seed errors, which the errors gate judges.
    write(tmp_path / "no-probe", make_result("twin", 7, status="error", passed=False))
    assert collect(tmp_path / "no-probe", round_).probe("twin").state == "failure"


def test_a_probe_without_seed_pairs_shows_no_mcnemar_p(tmp_path):
    round_ = make_round(seeds=(1, 7))
    errored = {("core", s): make_result("core", s, status="error", passed=False) for s in (1, 7)}
    full_round(tmp_path, round_, errored)
    core = collect(tmp_path, round_).probe("core")
    cells = dict(zip(SUMMARY_HEADERS, summary_cells(core), strict=True))
    assert cells["agree"] == "0/0" and cells["McNemar p (Holm)"] == "—"


def test_missing_seeds_not_required_pass_the_gate(tmp_path):
    round_ = make_round(require_all_seeds=False)
    full_round(tmp_path, round_, {("core", 42): None})
    report = collect(tmp_path, round_)
    assert report.passed
    artifacts = [g for g in report.gates if g.name == "artifacts"]
    assert all(g.passed for g in artifacts)
    assert any("not required" in g.detail for g in artifacts)


def test_error_runs_are_judged_by_the_errors_gate(tmp_path):
    round_ = make_round(max_error_seeds=1)
    failed = make_result(
        "core", 7, losses=trace(7, 3), status="error", cf_loss=None, passed=False, error="OOM"
    )
    full_round(tmp_path, round_, {("core", 7): failed})
    report = collect(tmp_path, round_)
    errors = [g for g in report.gates if g.name == "errors"]
    assert len(errors) == 1 and errors[0].passed
    assert report.probe("core").seeds[1].trace == "unavailable"
    assert report.passed
    assert any(p.kind == "run-error" and "OOM" in p.detail for p in report.problems)


def test_empty_directory_is_unusable_input(tmp_path):
    with pytest.raises(UsageError) as caught:
        collect(tmp_path, make_round())
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):
        collect(tmp_path / "absent", make_round())


@pytest.mark.parametrize("folder", ["empty", "absent"])
def test_no_artifact_at_all_is_unusable_but_still_reported(tmp_path, monkeypatch, folder):
    """In CI: every probe job failed before writing a result. The exit says the input is
    unusable, and the reports and job summary still say every cell is missing, so that the
    status step has a report to post (each status an error: nothing could be judged)."""
    (tmp_path / "empty").mkdir()
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    outputs = ReportOutputs(json=tmp_path / "report.json", markdown=tmp_path / "report.md")
    with pytest.raises(UsageError) as caught:
        collect_and_report(tmp_path / folder, make_round(), quiet=True, outputs=outputs)
    assert caught.value.exit_code == 2
    report = parse_report((tmp_path / "report.json").read_text(), "report.json")
    assert [p.kind for p in report.problems] == ["missing"] * 6
    assert {status.state for status in build_statuses(report)} == {"error"}
    assert "no artifact found" in summary.read_text()


@pytest.fixture
def matrix_dir(tmp_path) -> Path:
    matrix = tmp_path / "matrix"
    (matrix / "rounds").mkdir(parents=True)
    (matrix / "rounds" / f"{ROUND}.toml").write_text(
        'hypothesis = "cli"\nprobes = ["reference", "core"]\nbaseline = "reference"\n'
        "seeds = [1, 7]\n"
    )
    return matrix


def test_cli_exit_codes(tmp_path, matrix_dir, capsys):
    artifacts = tmp_path / "artifacts"
    write(artifacts, *(make_result(p, s) for p in ("reference", "core") for s in (1, 7)))
    base = ["--round", ROUND, "--matrix", str(matrix_dir)]
    assert main(["collect", str(artifacts), *base]) == 0
    assert "| `core`" in capsys.readouterr().out

    (artifacts / artifact_name(ROUND, "core", 7)).unlink()  # a seed missing: gate fails
    assert main(["collect", str(artifacts), *base, "--quiet"]) == 1
    assert capsys.readouterr().out == ""

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["collect", str(empty), *base]) == 2
    assert main(["collect", str(tmp_path / "nowhere"), *base]) == 2
    assert main(["collect", str(artifacts), "--round", "nope", "--matrix", str(matrix_dir)]) == 2
    assert "no round 'nope'" in capsys.readouterr().err


def filtered_round_matrix(tmp_path: Path) -> Path:
    """Round T1 of three probes over seeds 1, 42, 7, whose baseline measures the noise floor on
    seeds 1 and 42 (no trace_tolerance)."""
    matrix = tmp_path / "matrix"
    (matrix / "rounds").mkdir(parents=True)
    (matrix / "probes.toml").write_text(
        '[probes.reordered]\nknobs = { compile = false }\nexpect = "equivalent"\n'
    )
    (matrix / "rounds" / f"{ROUND}.toml").write_text(
        'hypothesis = "filtered"\nprobes = ["reference", "core", "reordered"]\nseeds = [1, 42, 7]\n'
    )
    return matrix


def test_a_filtered_run_is_judged_on_the_cells_plan_scheduled(tmp_path, capsys):
    # What the workflow runs for a dispatch with probes "reordered" and seeds "7": plan adds the
    # baseline and the calibration seeds 1, 42, and passes that selection on to collect.
    matrix = filtered_round_matrix(tmp_path)
    artifacts = tmp_path / "artifacts"
    drift = NoiseSample(variants=["reordered"], loss=[1e-6] * 30, grad_norm=[2e-7] * 30)
    calibrated = [make_result("reference", s).model_copy(update={"noise": drift}) for s in (1, 42)]
    # Float noise from the first step on: within the floor, never bit for bit.
    nudged = [make_result("reordered", s, losses=[x + 2e-6 for x in trace(s)]) for s in (1, 42, 7)]
    write(artifacts, *calibrated, make_result("reference", 7), *nudged)
    json_report = tmp_path / "report.json"
    base = [str(artifacts), "--round", ROUND, "--matrix", str(matrix), "--json", str(json_report)]

    assert main(["collect", *base, "--quiet"]) == 1  # the whole round: core is missing
    selection = ["--probes", "reordered", "--seeds", "1, 42,7"]
    assert main(["collect", *base, *selection]) == 0
    markdown = capsys.readouterr().out
    assert (
        "**Selection:** probes `reference`, `reordered` (2 of 3) × seeds 1, 42, 7 (3 of 3): "
        "a filtered run, whose report judges only these cells."
    ) in markdown
    report = parse_report(json_report.read_text(), "report.json")
    assert [p.id for p in report.probes] == ["reference", "reordered"]
    assert report.problems == [] and report.passed
    assert report.noise_floor is not None and report.noise_floor.seeds == [1, 42]
    assert report.probe("reordered").trace_counts() == {"equivalent": 3}
    # One status per judged probe: none for core, which this run did not plan.
    assert [s.context for s in build_statuses(report, None)] == [
        probe_context(ROUND, "reference"),
        probe_context(ROUND, "reordered"),
        round_context(ROUND),
    ]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seeds", "99", "round 'T1' has no seed 99"),
        ("--probes", "nope", "round 'T1' has no probe 'nope'"),
        ("--seeds", "1 2", "contains characters a seed list never has: ' '"),
    ],
)
def test_a_selection_outside_the_round_is_unusable_input(tmp_path, capsys, flag, value, message):
    matrix = filtered_round_matrix(tmp_path)
    write(tmp_path / "artifacts", make_result("reference", 1))
    args = [str(tmp_path / "artifacts"), "--round", ROUND, "--matrix", str(matrix), flag, value]
    assert main(["collect", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_report_collect_writes_is_skipped_and_any_other_report_noted(tmp_path):
    round_ = make_round()
    full_round(tmp_path, round_)
    assert collect_and_report(tmp_path, round_, quiet=True) == 0
    report = collect(tmp_path, round_)  # report.json now sits among the artifacts: its own
    assert report.problems == [] and report.passed
    assert report.files_seen == len(round_.probes) * len(round_.seeds)
    (tmp_path / "old").mkdir()
    (tmp_path / "report.json").rename(tmp_path / "old" / "report.json")
    report = collect(tmp_path, round_)  # a report elsewhere is not collect's own output
    assert [(p.kind, p.subject) for p in report.problems] == [
        ("not-an-artifact", "old/report.json")
    ]
    only_report = tmp_path / "only"
    only_report.mkdir()
    (tmp_path / "old" / "report.json").rename(only_report / "report.json")
    with pytest.raises(UsageError, match="no artifacts"):
        collect(only_report, round_)


# --- renderers ---------------------------------------------------------------------------------


def table_blocks(markdown: str) -> list[list[str]]:
    blocks, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def pipe_positions(line: str) -> list[int]:
    return [i for i, char in enumerate(line) if char == "|" and (i == 0 or line[i - 1] != "\\")]


def test_markdown_columns_align(tmp_path):
    round_ = make_round(probes=("reference", "core", "pad", "clip"))
    losses = trace(7)
    losses[6] += 0.5
    full_round(
        tmp_path,
        round_,
        {
            ("pad", 1): make_result("pad", 1, shape=(6, 32)),
            ("clip", 7): make_result("clip", 7, losses=losses, generation="a | b\nc <script>"),
        },
    )
    blocks = table_blocks(render_markdown(collect(tmp_path, round_)))
    assert len(blocks) == 2  # the probe table and the per-seed table
    for block in blocks:
        positions = {tuple(pipe_positions(line)) for line in block}
        assert len(positions) == 1, block
        assert len({len(line) for line in block}) == 1


def test_fit_summary_truncates_details_first_with_a_note(tmp_path):
    round_ = make_round(probes=("reference", "core"), seeds=range(100))
    full_round(tmp_path, round_)
    markdown = render_markdown(collect(tmp_path, round_))
    assert fit_summary(markdown) == markdown  # small enough already
    limit = len(markdown.encode()) // 2
    fitted = fit_summary(markdown, limit)
    assert len(fitted.encode()) <= limit
    assert "**Truncated:**" in fitted and "of 200 per-seed rows shown" in fitted
    # The probe table, gates and the details' frame survive; only per-seed rows were dropped.
    head = markdown[: markdown.index(DETAILS_START)]
    assert fitted.startswith(head)
    assert DETAILS_END in fitted and "</details>" in fitted
    assert len(table_blocks(fitted)[1]) < len(table_blocks(markdown)[1])

    # With room for less than the head, the text is cut at a line, still with a note.
    tiny = fit_summary(markdown, 600)
    assert len(tiny.encode()) <= 600
    assert "**Truncated:**" in tiny
    assert DETAILS_START not in tiny


class BalanceChecker(HTMLParser):
    """Fails on a closing tag that does not match the open one; counts svg per section."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.svg_per_section: dict[str, int] = {}
        self.section: str | None = None
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        if tag == "section":
            self.section = dict(attrs)["id"]
            self.svg_per_section[self.section] = 0
        if tag == "svg" and self.section:
            self.svg_per_section[self.section] += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()
        if tag == "section":
            self.section = None


def test_html_is_well_formed_with_a_plot_per_probe_and_escaped_text(tmp_path):
    round_ = make_round(probes=("reference", "core", "pad", "clip"))
    losses = trace(1)
    losses[6] += 0.0123
    losses[20] = math.nan
    evil = "<script>alert('x')</script> & Unsloth"
    full_round(
        tmp_path,
        round_,
        {
            ("clip", 1): make_result("clip", 1, losses=losses, generation=evil),
            ("pad", 7): make_result("pad", 7, shape=(6, 32)),
            ("core", 42): None,
        },
    )
    page = render_html(collect(tmp_path, round_))
    checker = BalanceChecker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert checker.scripts == 0
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Unsloth" in page
    assert set(checker.svg_per_section) == {f"probe-{p}" for p in round_.probes}
    assert all(count >= 1 for count in checker.svg_per_section.values())
    assert checker.svg_per_section["probe-core"] == 2 + 1  # one per seed with data, one Δ plot
    assert 'class="diverge"' in page and 'class="structural"' in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # no external assets


def test_html_escapes_each_cell_even_one_holding_a_nul(tmp_path):
    # Rows are escaped whole, their cells joined by NUL: a cell with a NUL of its own must stay
    # one cell, and its neighbours escaped all the same.
    round_ = make_round(probes=("reference", "clip"), seeds=(1, 2))
    odd, plain = "a\0<blink>", "<<HELLO!!>> & co"
    results = {("clip", 1): make_result("clip", 1, generation=odd)}
    results[("clip", 2)] = make_result("clip", 2, generation=plain)
    full_round(tmp_path, round_, results)
    page = render_html(collect(tmp_path, round_))
    assert "<td>a\0&lt;blink&gt;</td>" in page
    assert "<td>&lt;&lt;HELLO!!&gt;&gt; &amp; co</td>" in page
    assert "<blink>" not in page


def test_html_caps_plots_on_large_rounds(tmp_path):
    round_ = make_round(probes=("reference", "clip"), seeds=range(40))
    losses = trace(39)
    losses[3] += 1.0
    full_round(tmp_path, round_, {("clip", 39): make_result("clip", 39, losses=losses)})
    page = render_html(collect(tmp_path, round_))
    section = page[page.index('id="probe-clip"') :]
    assert section.count("<svg") == 30 + 1  # and the probe's difference plot
    assert "Showing 30 of 40 seeds" in section
    # The diverging seed is plotted even though it is last in round order.
    assert "seed 39: diverges at step 4" in section


def seed_plot(page: str, probe: str, seed: int) -> str:
    """The loss plot of one seed of ``probe`` on the HTML page."""
    section = page[page.index(f'id="probe-{probe}"') :]
    caption = section.index(f"<figcaption>seed {seed}:")
    return section[section.rindex("<svg", 0, caption) : caption]


def marker_x(plot: str, css: str) -> list[float]:
    return [float(x) for x in re.findall(rf'<line class="{css}" x1="([\d.]+)"', plot)]


def test_the_loss_divergence_marker_marks_only_where_the_losses_part(tmp_path):
    """A batch shape or a gradient norm can part while every loss stays bitwise equal: the red
    marker (legend: "first loss divergence") is drawn only where the losses themselves part."""
    round_ = make_round(probes=("reference", "pad", "clip"), seeds=(1, 7))
    later = trace(7)
    later[4] += 0.25
    full_round(
        tmp_path,
        round_,
        {
            ("pad", 1): make_result("pad", 1, shape=(6, 32)),  # losses identical
            ("pad", 7): make_result("pad", 7, shape=(6, 32), losses=later),  # loss parts at 5
            ("clip", 1): make_result("clip", 1, grad_norm=0.75),  # losses identical
        },
    )
    report = collect(tmp_path, round_)
    assert [s.divergence_signal for s in report.probe("pad").seeds] == ["structure"] * 2
    page = render_html(report)
    assert "first loss divergence" in page  # the legend's meaning, which the markers keep

    left, width = html_report.LEFT, html_report.WIDTH - html_report.LEFT - html_report.RIGHT

    def x(step: int) -> float:  # the plots' own step scale, 30 steps
        return round(left + width * (step - 1) / 29, 1)

    identical_losses = seed_plot(page, "pad", 1)
    assert marker_x(identical_losses, "structural") == [x(1)]
    assert marker_x(identical_losses, "diverge") == []
    # Structure parts first, the losses at step 5: each marker at its own step.
    both = seed_plot(page, "pad", 7)
    assert marker_x(both, "structural") == [x(1)] and marker_x(both, "diverge") == [x(5)]
    # Each step's label is in its marker's colour.
    labels = re.findall(r'<text class="mark-([\w-]+)"[^>]*>(\d+)</text>', both)
    assert labels == [("structural", "1"), ("diverge", "5")]
    assert marker_x(seed_plot(page, "clip", 1), "diverge") == []  # a gradient norm is not a loss
    assert marker_x(seed_plot(page, "clip", 7), "diverge") == []  # identical


def text_boxes(svg: str) -> list[tuple[str, float, float, float]]:
    """(text, left, right, baseline y) of every unrotated label, its width estimated at
    CHAR_W a character."""
    boxes = []
    pattern = (
        r'<text(?: class="[\w-]+")? x="([-\d.]+)" y="([-\d.]+)"'
        r'(?: text-anchor="(\w+)")?>([^<]*)</text>'
    )
    for x, y, anchor, text in re.findall(pattern, svg):
        width = len(text) * html_report.CHAR_W
        left = float(x) - {"end": width, "middle": width / 2}.get(anchor, 0.0)
        boxes.append((text, left, left + width, float(y)))
    return boxes


@pytest.mark.parametrize(
    ("steps", "structural", "loss"),
    [(12, 1, 1), (12, 1, 2), (1000, 1, 2), (1000, 999, 1000), (30, 14, 15)],
)
def test_marker_labels_stay_clear_of_the_axis_labels_and_each_other(steps, structural, loss):
    # At step 1 a label centred on its marker sat on the y axis beside its top value ("9.481").
    baseline = trace(1, steps)
    probe = [value * 1.01 for value in baseline]
    svg = html_report.loss_plot("t", baseline, probe, loss, structural)
    boxes = text_boxes(svg)
    labels = [b for b in boxes if b[3] == html_report.TOP - 1]
    assert sorted(int(b[0]) for b in labels) == sorted({structural, loss})  # one per step
    y_axis = [b for b in boxes if b[2] < html_report.LEFT]
    assert len(y_axis) == 2  # the top and the bottom value
    for _, left, right, _ in labels:
        assert left >= html_report.LEFT and right <= html_report.WIDTH - html_report.RIGHT
        assert all(left > axis_right for _, _, axis_right, _ in y_axis)
    assert all(a[2] < b[1] for a, b in itertools.pairwise(sorted(labels, key=lambda b: b[1])))


def test_each_plot_titles_its_y_axis_and_the_band_says_its_width(tmp_path):
    round_ = make_round(probes=("reference", "clip"), seeds=(1,), trace_tolerance=1e-6)
    losses = trace(1)
    losses[6] += 0.0123
    full_round(tmp_path, round_, {("clip", 1): make_result("clip", 1, losses=losses)})
    page = render_html(collect(tmp_path, round_))
    section = page[page.index('id="probe-clip"') :]
    difference = section[section.index("<svg") : section.index("</svg>")]
    loss = seed_plot(page, "clip", 1)
    rotated = r'<text transform="rotate\(-90\)"[^>]*>([^<]*)</text>'
    assert re.findall(rotated, difference) == ["Δloss (symmetric log scale)"]
    assert re.findall(rotated, loss) == ["loss (log scale)"]
    # The x axis is titled "step" alone, no longer merged with the y axis's scale.
    for plot in (difference, loss):
        assert [b[0] for b in text_boxes(plot) if b[0].startswith("step")] == ["step"]
    # The band's width, written just above its upper edge at the last step.
    (label,) = [b for b in text_boxes(difference) if b[0].startswith("±")]
    assert label[0] == "±1e-06 allowed"
    band = difference.split('class="floor" points="')[1].split('"')[0].split()
    edge_y = float(band[29].split(",")[1])  # the upper edge's last point
    assert label[3] == pytest.approx(edge_y - 3, abs=0.06)


def test_the_html_header_and_tables_say_what_the_markdown_says(tmp_path):
    seeds = (1, 7, 42, 123, 456, 789, 999, 1234)
    round_ = make_round(probes=("reference", "core"), seeds=seeds, cf_loss_max=1000.0)
    # 5/8 pass: 62.5%, shown as 63% (round half up), never Python's round-half-even 62%.
    flags = {s: i < 5 for i, s in enumerate(seeds)}
    overrides = {(p, s): make_result(p, s, passed=flags[s]) for p in round_.probes for s in seeds}
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    markdown, page = render_markdown(report), render_html(report)
    # One formatter for the smoke threshold, as the round set it: never "1000.0" or "1e+03".
    assert "smoke gate cf_loss < 1000 ·" in markdown
    assert "smoke gate cf_loss &lt; 1000 ·" in page
    assert "cf_loss < 1000 on 8/8 seeds" in markdown
    assert "cf_loss &lt; 1000 on 8/8 seeds" in page
    assert "1e+03" not in markdown + page and "1000.0" not in markdown + page
    assert "<b>Devices:</b> gpu" in page and "**Devices:** `gpu`" in markdown
    assert "5/8 = 63% (31%–86%)" in markdown and "5/8 = 63% (31%–86%)" in page
    assert "bar [63, 63]" in markdown
    # Pass flags read yes/no in both per-seed tables.
    assert "<td>yes</td><td>yes</td>" in page and "<td>no</td><td>no</td>" in page
    assert "<td>true</td>" not in page and "<td>false</td>" not in page
    # The baseline's section says it is the baseline: it expects nothing of itself.
    baseline = page[page.index('id="probe-reference"') : page.index('id="probe-core"')]
    line = baseline[baseline.index("<p>") : baseline.index("</p>")]
    assert "the baseline every probe is compared with" in line and "expect" not in line
    core = page[page.index('id="probe-core"') :]
    assert f"expect {report.probe('core').expect}" in core[: core.index("</p>")]


def test_the_gradient_norm_note_follows_the_rule_the_verdict_does(tmp_path):
    """The structure column notes the ratio at the first update exactly when it is outside
    what the verdicts allow, whatever its size: never for one seed of a probe and not another."""
    round_ = make_round(probes=("reference", "core"), seeds=(1, 7, 42))
    ratios = {1: 0.9926, 7: 1.07, 42: 1 + 1e-7}  # the last inside four float32 eps
    overrides = {("core", s): make_result("core", s, grad_norm=1.5 * r) for s, r in ratios.items()}
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    markdown, page = render_markdown(report), render_html(report)
    core = report.probe("core").seeds
    assert [s.trace for s in core] == ["diverges", "diverges", "identical"]
    for text in (markdown, page):
        assert "same; gradient norm 0.9926× at the first update" in text
        assert "same; gradient norm 1.07× at the first update" in text
        assert text.count("same; gradient norm") == 2
    # The trace column writes the same ratio the same way.
    assert core[0].trace_detail.startswith("diverges at step 1: gradient norm 0.9926×")
    assert core[1].trace_detail.startswith("diverges at step 1: gradient norm 1.07×")


def test_statuses_are_short_and_complete(tmp_path):
    round_ = make_round(probes=("reference", "core", "clip"), seeds=SEEDS_15)
    passes_10_of_15_vs_8_of_15(tmp_path, round_)
    report = collect(tmp_path, round_)
    statuses = json.loads(report_json(report))["statuses"]
    assert [s["context"] for s in statuses] == [
        "mlx-parity/T1/reference",
        "mlx-parity/T1/core",
        "mlx-parity/T1/clip",
        "mlx-parity/T1",
    ]
    assert all(set(s) == {"state", "context", "description", "target_url"} for s in statuses)
    assert all(len(s["description"]) <= 140 for s in statuses)
    core = statuses[1]
    assert core == {
        "state": "success",
        "context": "mlx-parity/T1/core",
        "description": "8/15 pass (53%), trace identical 15/15, no difference detected (p=0.625)",
        "target_url": None,
    }
    # Failed gates come first, and long text is cut to GitHub's limit.
    long_round = make_round(probes=("reference", "core"), seeds=(1,), cf_loss_max=0.1)
    long_dir = tmp_path / "long"
    full_round(long_dir, long_round, {("core", 1): make_result("core", 1, cf_loss=0.3)})
    statuses = build_statuses(collect(long_dir, long_round), target_url="https://x/run/1")
    assert statuses[1].state == "failure"
    assert statuses[1].description.startswith("failed smoke: ")
    assert statuses[-1].target_url == "https://x/run/1"


def test_report_json_round_trips(tmp_path):
    round_ = make_round(probes=("reference", "core", "pad"))
    full_round(
        tmp_path,
        round_,
        {
            ("pad", 1): make_result("pad", 1, shape=(6, 32)),
            ("core", 7): make_result("core", 7, status="nonfinite", cf_loss=math.nan),
        },
    )
    report = collect(tmp_path, round_)
    again = parse_report(report_json(report), "test")
    assert render_markdown(again) == render_markdown(report)
    assert again.probe("core").seeds[1].cf_loss != again.probe("core").seeds[1].cf_loss  # NaN


# --- comparing rounds --------------------------------------------------------------------------


def write_report(directory: Path, report: RoundReport) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(report_json(report))
    return directory


def test_compare_identical_rounds(tmp_path, capsys):
    round_ = make_round(probes=("reference", "core", "clip"), seeds=SEEDS_15)
    passes_10_of_15_vs_8_of_15(tmp_path / "a", round_)
    report = collect(tmp_path / "a", round_)
    bm = write_report(tmp_path / "BM", report)
    bo = write_report(tmp_path / "BO", report)
    rows = compare_reports(load_report(bm), load_report(bo / "report.json"))
    floor = "≥ 47 points (≥ 7 of 15 seeds flipping one way)"  # exact p of 7 one way: 2/128
    assert [row.conclude() for row in rows] == [
        f"{UNCHANGED}; these seeds could detect {floor} at best"
    ] * 3
    assert main(["compare", str(bm), str(bo)]) == 0
    assert f"{UNCHANGED}** for any of the 3 probes" in capsys.readouterr().out


def test_compare_names_what_changed(tmp_path, capsys):
    round_ = make_round(probes=("reference", "core", "clip"), seeds=SEEDS_15)
    before = tmp_path / "before"
    full_round(before, round_)
    after = tmp_path / "after"
    overrides = {}
    for index, seed in enumerate(SEEDS_15):
        losses = trace(seed)
        losses[4] += 0.25
        overrides[("core", seed)] = make_result("core", seed, losses=losses, passed=index < 2)
    full_round(after, round_, overrides)
    a = write_report(tmp_path / "A", collect(before, round_))
    b = write_report(tmp_path / "B", collect(after, round_))
    rows = {row.probe: row for row in compare_reports(load_report(a), load_report(b))}
    assert rows["clip"].conclude().startswith(UNCHANGED)
    assert rows["reference"].conclude().startswith(UNCHANGED)
    changes = rows["core"].changes
    # 13 seeds pass→fail: exact p = 2/2^13, Holm over 3 probes.
    holm = f"{3 * 2 / 2**13:.3g}"
    expected = f"pass rate 15/15 → 2/15: 13 seeds pass→fail, 0 fail→pass (exact McNemar p={holm}"
    assert f"{expected}, Holm)" in changes
    assert "trace identical 15/15 → diverges 15/15" in changes
    assert "new divergence at step 5" in changes
    assert main(["compare", str(a), str(b)]) == 4  # a difference found
    assert "1 of 3 probes changed" in capsys.readouterr().out


def test_compare_refuses_what_is_not_a_report(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    assert main(["compare", str(tmp_path / "x.json"), str(tmp_path)]) == 2
    with pytest.raises(UsageError, match="not a round report"):
        load_report(tmp_path / "x.json")


def test_gather_reports_every_planned_cell(tmp_path):
    round_ = make_round(probes=("reference", "core"), seeds=(1, 2))
    write(tmp_path, make_result("reference", 1))
    gathered = gather(tmp_path, round_)
    assert gathered.files_seen == 1
    missing = sorted((p.probe, p.seed) for p in gathered.problems if p.kind == "missing")
    assert missing == [("core", 1), ("core", 2), ("reference", 2)]


# --- probes described by what their seeds recorded -------------------------------------------


def test_collect_after_the_matrix_changed_describes_probes_as_they_ran(tmp_path, capsys):
    matrix = tmp_path / "matrix"
    (matrix / "rounds").mkdir(parents=True)
    (matrix / "rounds" / f"{ROUND}.toml").write_text(
        'hypothesis = "h"\nprobes = ["reference", "pad"]\nseeds = [1, 7]\n'
    )
    catalog = matrix / "probes.toml"
    catalog.write_text('[probes.pad]\nknobs = { padding = "multiple" }\n')
    artifacts = tmp_path / "artifacts"
    write(artifacts, *(make_result(p, s) for p in ("reference", "pad") for s in (1, 7)))
    # After the run, someone edits the catalog: "pad" now means another knob.
    catalog.write_text('[probes.pad]\nknobs = { loss_mask = "exclusive" }\n')

    status = main(
        ["collect", str(artifacts), "--round", ROUND, "--matrix", str(matrix), "--quiet"]
        + ["--json", str(tmp_path / "report.json")]
    )
    assert status == 0
    report = load_report(tmp_path / "report.json")
    assert report.probe("pad").knobs == {"padding": "multiple"}
    mismatched = [p for p in report.problems if p.kind == "config-mismatch"]
    assert [(p.probe, p.seed) for p in mismatched] == [("pad", 1), ("pad", 7)]
    for problem in mismatched:
        assert problem.subject == artifact_name(ROUND, "pad", problem.seed)
        assert 'loss_mask="inclusive" (round file: "exclusive")' in problem.detail
        assert 'padding="multiple" (round file: "mlx-lm")' in problem.detail
    markdown = render_markdown(report)
    assert "config-mismatch" in markdown and "padding" in markdown


# --- re-runs: each cell's newest attempt -------------------------------------------------------


def test_a_rerun_is_collected_from_each_cells_newest_attempt(tmp_path):
    round_ = make_round(seeds=(1, 7))
    folder = "seed-results-T1-{}-0-attempt{}"
    # Attempt 1 ran both cells; attempt 2 re-ran only the reference cell, which now fails.
    for probe in ("reference", "core"):
        write(tmp_path / folder.format(probe, 1), *(make_result(probe, s) for s in (1, 7)))
    rerun = tmp_path / folder.format("reference", 2)
    write(rerun, *(make_result("reference", s, passed=False) for s in (1, 7)))

    report = collect_round(tmp_path, round_, attempt=2)
    assert [s.passed for s in report.probe("reference").seeds] == [False, False]
    assert [s.passed for s in report.probe("core").seeds] == [True, True]
    kinds = {(p.kind, p.subject) for p in report.problems}
    assert ("superseded", folder.format("reference", 1)) in kinds
    assert ("earlier-attempt", folder.format("core", 1)) in kinds
    assert not any(p.blocking for p in report.problems)  # nothing is missing or duplicated
    assert report.files_seen == 6

    # A third attempt of the core cell that died after seed 1: seed 7 is missing, and the
    # message says where its earlier copy went.
    write(tmp_path / folder.format("core", 3), make_result("core", 1))
    report = collect_round(tmp_path, round_, attempt=3)
    missing = {p.subject: p.detail for p in report.problems if p.kind == "missing"}
    earlier = f"{folder.format('core', 1)}/{artifact_name(ROUND, 'core', 7)}"
    assert missing == {"core seed 7": f"no valid artifact ({earlier} is from a superseded attempt)"}


def test_seeds_show_their_device_and_cross_device_comparisons_are_flagged(tmp_path):
    round_ = make_round(seeds=(1, 7))
    on_cpu = ENVIRONMENT.model_copy(update={"device": "cpu (Apple M2)"})
    moved = make_result("core", 7)
    moved = moved.model_copy(update={"environment": on_cpu})
    full_round(tmp_path, round_, {("core", 7): moved})
    report = collect(tmp_path, round_)
    core = report.probe("core")
    assert [s.device for s in core.seeds] == ["gpu", "cpu (Apple M2)"]
    assert core.seeds[0].cross_device is None
    assert core.seeds[1].cross_device == "cpu (Apple M2) vs gpu"
    assert "not a bitwise comparison" in core.seeds[1].trace_detail
    markdown = render_markdown(report)
    assert "**Devices:** `cpu (Apple M2)`, `gpu`" in markdown
    warning = "1 seed comparison across devices (core seed 7)"
    assert f"⚠️ {warning}" in markdown
    # The HTML page's header says the same as the Markdown's.
    page = render_html(report)
    assert "<b>Devices:</b> cpu (Apple M2), gpu" in page and warning in page


def test_compare_pairs_seeds_across_rounds(tmp_path):
    """20/30 → 12/30 with 8 seeds flipping pass→fail: independent counts (Fisher) would see no
    change, the paired exact McNemar test does (p = 2/2^8 = 0.0078)."""
    seeds = list(range(30))
    round_ = make_round(probes=("reference", "core"), seeds=seeds)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_, {("core", s): make_result("core", s, passed=s < 20) for s in seeds})
    full_round(after, round_, {("core", s): make_result("core", s, passed=s < 12) for s in seeds})
    rows = compare_reports(collect(before, round_), collect(after, round_))
    core = next(row for row in rows if row.probe == "core")
    assert (core.paired.passes_lost, core.paired.passes_gained) == (8, 0)
    assert core.pass_p == pytest.approx(exact_mcnemar(8, 0))
    assert exact_mcnemar(8, 0) == pytest.approx(0.0078125)
    # Holm over both probes (the baseline is compared across the rounds too; its p is 1).
    assert core.pass_p_adjusted == pytest.approx(2 * 0.0078125)
    assert core.changes[0].startswith("pass rate 20/30 → 12/30: 8 seeds pass→fail")


def test_a_p_value_crossing_alpha_is_not_a_change(tmp_path):
    """9/15 → 10/15 against the baseline: one seed flips between the rounds; whatever each
    round's verdict, the paired test between them detects nothing."""
    round_ = make_round(probes=("reference", "core"), seeds=SEEDS_15)
    before, after = tmp_path / "before", tmp_path / "after"
    for directory, passing in ((before, 9), (after, 10)):
        overrides = {
            ("core", s): make_result("core", s, passed=i < passing) for i, s in enumerate(SEEDS_15)
        }
        full_round(directory, round_, overrides)
    (row,) = [
        r
        for r in compare_reports(collect(before, round_), collect(after, round_))
        if r.probe == "core"
    ]
    assert row.pass_p == pytest.approx(1.0) and row.changes == []


def test_errored_seeds_are_counted_and_gated_but_not_paired(tmp_path):
    round_ = make_round(seeds=(1, 7, 42), max_error_seeds=1)
    crashed = make_result("core", 42, status="error", error="boom", passed=False)
    full_round(tmp_path, round_, {("core", 42): crashed})
    report = collect(tmp_path, round_)
    core = report.probe("core")
    assert (core.seeds_run(), core.passes(), core.errored()) == (2, 2, 1)
    assert core.outcome.n == 2 and core.outcome.passes_lost == 0  # not paired as a failure
    assert "2/2 = 100%" in render_markdown(report) and "1 errored" in render_markdown(report)
    (errors,) = [g for g in report.gates_for("core") if g.name == "errors"]
    assert errors.passed and "1 seed ended in error" in errors.detail


def test_a_probe_whose_every_seed_errored_is_marked_errored(tmp_path):
    round_ = make_round(seeds=(1, 7))
    overrides = {("core", s): make_result("core", s, status="error", passed=False) for s in (1, 7)}
    full_round(tmp_path, round_, overrides)
    core = collect(tmp_path, round_).probe("core")
    assert core.verdict == "errored: no seed ran to the end"
    assert core.state == "failure"


def test_the_outcome_gate_fails_a_round_whose_pass_rate_differs(tmp_path):
    seeds = list(range(12))
    losing = {("core", s): make_result("core", s, passed=s < 4) for s in seeds}  # 8 lost
    for gate, passed in ((False, True), (True, False)):
        directory = tmp_path / str(gate)
        round_ = make_round(seeds=seeds, outcome=gate)
        full_round(directory, round_, losing)
        report = collect(directory, round_)
        core = report.probe("core")
        assert core.outcome_differs and core.verdict == "differs from baseline (p=0.00781)"
        assert report.passed is passed
        (status,) = [s for s in build_statuses(report) if s.context.endswith("/core")]
        # Green or not, the status says the pass rate differs (after a failed gate's name).
        assert status.description.startswith(
            "⚠ differs from baseline" if passed else "failed outcome: ⚠ differs from baseline"
        )
        assert status.state == ("success" if passed else "failure")
        assert "⚠️ pass rate differs: core" in render_markdown(report).splitlines()[0]


def test_a_probe_whose_seeds_change_nothing_is_flagged(tmp_path):
    """All seeds with the very same trace: the sign of a trainer that never seeds its init."""
    round_ = make_round(probes=("reference", "core", "twin"), seeds=(1, 7, 42))
    same = {("core", s): make_result("core", s, losses=trace(1)) for s in (1, 7, 42)}
    full_round(tmp_path, round_, same)
    report = collect(tmp_path, round_)
    assert report.probe("core").seed_insensitive
    assert not report.probe("twin").seed_insensitive
    assert not report.probe("reference").seed_insensitive
    assert "⚠️ Seeds have no effect on `core`" in render_markdown(report)
    (status,) = [s for s in build_statuses(report) if s.context.endswith("/core")]
    assert status.description.startswith("⚠ seeds have no effect")


def test_the_summary_carries_a_pass_rate_chart_github_renders(tmp_path):
    round_ = make_round(seeds=SEEDS_15)
    passes_10_of_15_vs_8_of_15(tmp_path, round_)
    markdown = render_markdown(collect(tmp_path, round_))
    chart = markdown[markdown.index("```mermaid") :].split("```\n", 2)[0]
    assert chart.splitlines() == [
        "```mermaid",
        "xychart-beta",
        '    title "Pass rate per probe (%)"',
        '    x-axis ["reference", "core"]',
        '    y-axis "pass rate (%)" 0 --> 100',
        "    bar [67, 53]",
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"batches": {3: "another-batch"}},
            "structural divergence at step 3: other rows or another order in the batch "
            "(sampling or shuffling)",
        ),
        (
            {"updates": {2: 1, 3: 1}},
            "structural divergence at step 2: 1 vs 2 optimizer updates so far "
            "(gradient accumulation)",
        ),
    ],
)
def test_every_recorded_signal_is_compared_earliest_first(tmp_path, override, message):
    """Batch order and update count differ while every loss (and shape) is the baseline's."""
    round_ = make_round(probes=("reference", "core"), seeds=(1,))
    full_round(tmp_path, round_, {("core", 1): make_result("core", 1, **override)})
    core = collect(tmp_path, round_).probe("core")
    assert core.seeds[0].trace == "diverges"
    assert core.seeds[0].structural == message
    where = message.removeprefix("structural divergence at ")
    assert core.seeds[0].trace_detail == f"diverges at {where} (losses identical over 30 steps)"
    assert core.seeds[0].divergence_signal == "structure"
    # The first divergence column says it once: the structural difference, where and what.
    assert divergence_text(core) == f"{message} (seed 1)"


def test_a_gradient_norm_near_one_keeps_the_digits_that_show_it_differs(tmp_path):
    # Legacy clipping scales a norm by 0.9997: rounded to "1×" it would read as no difference.
    round_ = make_round(probes=("reference", "core"), seeds=(1,))
    near = make_result("core", 1, grad_norm=1.5 * 0.999714)
    full_round(tmp_path, round_, {("core", 1): near})
    core = collect(tmp_path, round_).probe("core")
    assert core.gradient_scale() is None  # within 1% of 1: not a constant scale
    assert divergence_text(core) == "step 1: gradient norm 0.999714× (seed 1)"


def test_a_constant_gradient_scale_is_named_from_the_gradient_norm(tmp_path):
    """Adam cancels a constant gradient scale in the losses; the recorded norm shows it."""
    round_ = make_round(probes=("reference", "core"), seeds=(1, 7))
    half = {("core", s): make_result("core", s, grad_norm=0.75) for s in (1, 7)}
    full_round(tmp_path, round_, half)
    report = collect(tmp_path, round_)
    assert report.probe("core").gradient_scale() == pytest.approx(0.5)
    # Every loss equals the baseline's, yet the verdict is the gradient norm's.
    assert report.probe("core").seeds[0].trace_detail == (
        "diverges at step 1: gradient norm 0.5× (gradients scaled by 1/2) "
        "(losses identical over 30 steps)"
    )
    markdown = render_markdown(report)
    # One formatter for a ratio (format_ratio): "0.5×" in every column, never "0.50×" beside it.
    assert "gradient norm 0.5× the baseline's at the first update" in markdown
    assert "step 1: gradient norm 0.5× (seed 1)" in markdown  # the first divergence column
    assert "same; gradient norm 0.5× at the first update" in markdown  # the structure column


def test_the_terminal_report_aligns_and_fits_the_terminal(tmp_path):
    round_ = make_round(probes=("reference", "core", "mask"))
    full_round(tmp_path, round_)
    write(tmp_path, *(make_result("mask", s, ntoks=90) for s in round_.seeds))
    report = collect(tmp_path, round_)
    wide = render_terminal(report, tmp_path).splitlines()
    header = next(i for i, line in enumerate(wide) if line.startswith("probe "))
    table = wide[header : header + 6]
    # Every row's columns start where the header's do.
    starts = [table[0].index(name) for name in ("expects", "trace", "pass rate")]
    for row in (table[2], table[3], table[4]):
        assert [row[s - 2 : s] for s in starts] == ["  "] * 3 and row[starts[0]] != " "
    assert table[5].startswith("    first divergence: structural divergence at step 1: 90 vs 96")
    narrow = render_terminal(report, tmp_path, width=60).splitlines()
    assert all(len(line) <= 60 for line in narrow[1:-1])  # the title and the paths may wrap
    assert any(line.endswith("…") for line in narrow)
    # Free text is cut first: in 72 columns every probe's pass rate survives whole.
    fitted = render_terminal(report, tmp_path, width=72).splitlines()
    assert sum(line.endswith("3/3 = 100% (44%–100%)") for line in fitted) == len(round_.probes)
    assert "loss_mask=…" in "\n".join(fitted)  # the knobs column gave way
    assert narrow[-1] == f"reports: {tmp_path / 'report.md'}, report.html, report.json"
    # A probe whose seeds all gave one trace is flagged, as in the Markdown.
    write(tmp_path, *(make_result("mask", s, ntoks=90, losses=trace(1)) for s in round_.seeds))
    flagged = render_terminal(collect(tmp_path, round_), tmp_path)
    assert "⚠ seeds have no effect on mask: every seed gave the same loss trace" in flagged
    assert "on core" not in flagged


def test_reports_are_written_through_links_and_devices_never_replacing_them(tmp_path):
    target = tmp_path / "target.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    write_atomic(Path(os.devnull), "discarded")  # as `--json /dev/null` does
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    with pytest.raises(IsADirectoryError) as refused:
        write_atomic(tmp_path, "text")
    assert refused.value.filename == str(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as refused:
        write_atomic(tmp_path / "afile" / "report.json", "text")
    assert refused.value.filename == str(tmp_path / "afile")


def test_a_probe_whose_seeds_trained_under_different_settings_says_so(tmp_path):
    round_ = make_round(probes=("reference", "core"))
    full_round(tmp_path, round_)
    report = collect(tmp_path, round_)
    assert not any(p.mixed_settings for p in report.probes)
    other = make_result("core", 7)
    write(tmp_path, other.model_copy(update={"config": {**other.config, "lr": 0.5}}))
    report = collect(tmp_path, round_)
    core = report.probe("core")
    assert core.mixed_settings and not report.probe("reference").mixed_settings
    assert "trained under different settings" in summary_cells(core)[2]
    assert [p.seed for p in report.problems if p.kind == "config-mismatch"] == [7]


def test_a_seed_given_other_plugin_options_is_a_mismatch_and_the_report_records_them(tmp_path):
    round_ = make_round(probes=("reference", "core"), seeds=(1, 7))
    full_round(tmp_path, round_)
    write(tmp_path, make_result("core", 7).model_copy(update={"options": {"impl": "masked"}}))
    report = collect(tmp_path, round_)
    (mismatch,) = [p for p in report.problems if p.kind == "config-mismatch"]
    assert mismatch.seed == 7
    assert mismatch.detail == 'trained with options {"impl": "masked"} (round file: {})'
    assert report.probe("core").mixed_settings and report.probe("core").options == {}
