"""``mlx-parity plan``: the job outputs the workflow reads, refusals before any runner starts, and
the runner-cost estimate against numbers worked out by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlx_parity.cli import main
from mlx_parity.estimate import (
    PER_CELL,
    PER_SEED,
    billed_minutes,
    compare_layouts,
    format_duration,
    wall_clock_seconds,
)

MATRIX = Path(__file__).resolve().parent.parent / "matrix"


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A clean GitHub Actions environment with the step's output and summary files."""
    for name in list(os.environ):
        if name.startswith("GITHUB_") or name == "MLX_PARITY_MATRIX":
            monkeypatch.delenv(name)
    files = {"output": tmp_path / "github_output", "summary": tmp_path / "step_summary.md"}
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


def plan(*args: str, matrix: Path = MATRIX) -> int:
    return main(["plan", *args, "--matrix", str(matrix)])


def outputs(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines)


def entry(cell: str, probe: str, seeds: str, pins: str = "default") -> dict[str, str]:
    return {"cell": cell, "probe": probe, "seeds": seeds, "pins": pins}


def write_round(matrix: Path, round_id: str, body: str) -> Path:
    (matrix / "rounds").mkdir(parents=True, exist_ok=True)
    (matrix / "rounds" / f"{round_id}.toml").write_text(body, encoding="utf-8")
    return matrix


# --- the outputs ----------------------------------------------------------------------------


def test_smoke_round_outputs_are_exactly_what_the_workflow_reads(actions, capsys) -> None:
    assert plan("--round", "smoke", "--probes", "", "--seeds", "") == 0
    expected_matrix = {
        "include": [
            entry("smoke-reference-0", "reference", "1,42"),
            entry("smoke-core-0", "core", "1,42"),
            entry("smoke-clip-legacy-0", "clip-legacy", "1,42"),
        ]
    }
    text = actions["output"].read_text(encoding="utf-8")
    assert text == (
        f"matrix={json.dumps(expected_matrix, separators=(',', ':'))}\nround_id=smoke\n"
        # No filter: collect judges the whole round.
        "probes=\nseeds=\n"
    )
    # Compact JSON: no spaces, so the value is one line GitHub reads as-is.
    assert " " not in text
    summary = actions["summary"].read_text(encoding="utf-8")
    assert summary.startswith("## mlx-parity plan: round `smoke`\n")
    assert "**Hypothesis:** The core reproduces mlx-lm's per-step losses" in summary
    assert "| `smoke-core-0` | `core` | 1, 42 |" in summary
    assert "**3 cells**, 3 probes × 2 seeds = **6 seed runs** in total." in summary
    # 3 jobs of 150 + 2 × 45 = 240 s → 4 min each; 6 jobs of 195 s → 4 min each.
    assert "| one job per probe cell (this plan) | 3 | 12 | 4 min |" in summary
    assert "| one job per (probe, seed) | 6 | 24 | 6 min 30 s |" in summary
    assert "with 2 seeds, no gap could be detected" in summary
    # The summary is also on stdout (for logs and local runs); the outputs are not.
    out = capsys.readouterr().out
    assert out == summary
    assert "matrix=" not in out


def test_filters_select_cells_and_keep_the_baseline(actions, capsys) -> None:
    assert plan("--round", "demo", "--probes", "clip-legacy", "--seeds", "42,7,1") == 0
    got = outputs(actions["output"])
    assert json.loads(got["matrix"]) == {
        "include": [
            # Round order, not filter order; the baseline joins a filter that left it out.
            entry("demo-reference-0", "reference", "1,7,42"),
            entry("demo-clip-legacy-0", "clip-legacy", "1,7,42"),
        ]
    }
    assert got["round_id"] == "demo" and "cells" not in got
    # What collect is to judge: what was scheduled, in round order.
    assert (got["probes"], got["seeds"]) == ("reference,clip-legacy", "1,7,42")
    summary = actions["summary"].read_text(encoding="utf-8")
    assert "left out the baseline `reference`; it was added" in summary
    assert "2 probes × 3 seeds = **6 seed runs**" in summary
    assert "The seed filter left out" not in summary


def test_a_seed_filter_without_the_calibration_seeds_is_widened(actions, tmp_path) -> None:
    matrix = write_round(
        tmp_path / "matrix",
        "filtered",
        'hypothesis = "h"\nprobes = ["reference", "core", "twin"]\nseeds = [1, 42, 7]\n',
    )
    (matrix / "probes.toml").write_text("[probes.twin]\n", encoding="utf-8")
    assert plan("--round", "filtered", "--probes", "core", "--seeds", "7", matrix=matrix) == 0
    got = outputs(actions["output"])
    # The baseline measures the noise floor on the round's first two seeds: without them every
    # probe would be judged bit for bit, so every selected probe runs them too.
    assert json.loads(got["matrix"])["include"] == [
        entry("filtered-reference-0", "reference", "1,42,7"),
        entry("filtered-core-0", "core", "1,42,7"),
    ]
    assert (got["probes"], got["seeds"]) == ("reference,core", "1,42,7")
    summary = actions["summary"].read_text(encoding="utf-8")
    assert (
        "The seed filter left out seeds 1, 42; added for every probe, since the noise floor is "
        "measured on them."
    ) in summary
    assert plan("--round", "filtered", "--seeds", "7,1", matrix=matrix) == 0
    assert "left out seed 42;" in actions["summary"].read_text(encoding="utf-8")


def test_a_round_with_an_explicit_tolerance_keeps_the_seed_filter(actions, tmp_path) -> None:
    matrix = write_round(
        tmp_path / "matrix",
        "tolerant",
        'hypothesis = "h"\nprobes = ["reference", "core"]\nseeds = [1, 42, 7]\n'
        "[gates]\ntrace_tolerance = 0.0\n",
    )
    assert plan("--round", "tolerant", "--seeds", "7", matrix=matrix) == 0
    got = outputs(actions["output"])
    assert [e["seeds"] for e in json.loads(got["matrix"])["include"]] == ["7", "7"]
    # Only the seeds were filtered: collect judges every probe.
    assert (got["probes"], got["seeds"]) == ("", "7")
    assert "The seed filter left out" not in actions["summary"].read_text(encoding="utf-8")


def test_spaces_around_list_items_are_accepted(actions) -> None:
    # What a dispatch form invites: a space after each comma (and one typed at either end).
    assert plan("--round", "demo", "--probes", " core, clip-legacy ", "--seeds", "1, 7 ,42") == 0
    got = outputs(actions["output"])
    assert (got["probes"], got["seeds"]) == ("reference,core,clip-legacy", "1,7,42")


def test_filter_naming_the_baseline_adds_nothing(actions) -> None:
    assert plan("--round", "motivating", "--probes", "core,reference", "--seeds", "42,7,1") == 0
    got = outputs(actions["output"])
    assert json.loads(got["matrix"])["include"] == [
        entry("motivating-reference-0", "reference", "1,7,42"),
        entry("motivating-core-0", "core", "1,7,42"),
    ]
    assert "it was added" not in actions["summary"].read_text(encoding="utf-8")


def test_sharded_round_names_cells_by_shard_whatever_the_filter(actions, tmp_path) -> None:
    matrix = write_round(
        tmp_path / "matrix",
        "shards",
        'hypothesis = "h"\nprobes = ["reference", "core"]\nseeds = [1, 2, 3, 4, 5]\n'
        'seeds_per_cell = 2\npins = "macos-pins"\n',
    )
    assert plan("--round", "shards", "--seeds", "2,5", matrix=matrix) == 0
    # (Seed 1 joins the filter: the noise floor is measured on seeds 1 and 2.)
    assert json.loads(outputs(actions["output"])["matrix"])["include"] == [
        entry("shards-reference-0", "reference", "1,2", "macos-pins"),
        entry("shards-reference-2", "reference", "5", "macos-pins"),
        entry("shards-core-0", "core", "1,2", "macos-pins"),
        entry("shards-core-2", "core", "5", "macos-pins"),
    ]


def test_without_github_output_the_outputs_are_printed(actions, monkeypatch, capsys) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert plan("--round", "smoke", "--probes", "core") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith('matrix={"include":[{"cell":"smoke-reference-0"')
    assert lines[1:4] == ["round_id=smoke", "probes=reference,core", "seeds="]
    assert lines[4].startswith("## ")
    assert "## mlx-parity plan: round `smoke`" in out
    assert not actions["output"].exists() and not actions["summary"].exists()


# --- refusals -------------------------------------------------------------------------------

HOSTILE = [
    'x"; rm -rf /',
    "$(id)",
    "`id`",
    "a\nb",
    "../../etc",
    "smoke\n::error::forged",
    # Spaces around an item are allowed (see below); inside one they are not.
    "co re",
    "smoke'",
    "${{ github.token }}",
]


@pytest.mark.parametrize("flag", ["--round", "--probes", "--seeds"])
@pytest.mark.parametrize("value", HOSTILE)
def test_injection_attempts_are_refused_before_anything_is_written(
    actions, capsys, flag: str, value: str
) -> None:
    args = {"--round": "smoke", "--probes": "", "--seeds": ""}
    args[flag] = value
    code = plan(*(item for pair in args.items() for item in pair))
    assert code == 2
    assert not actions["output"].exists()
    captured = capsys.readouterr()
    assert captured.out == ""
    # One line, the value shown escaped: a newline in it cannot start a forged "::" command.
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"mlx-parity plan: error: {flag} {value!r}")
    assert "never has" in captured.err
    summary = actions["summary"].read_text(encoding="utf-8")
    assert summary.startswith("## mlx-parity plan: refused\n")
    assert "no macOS runner was started" in summary
    assert repr(value) in summary


def test_backticks_cannot_close_the_summary_fence(actions) -> None:
    assert plan("--round", "``````; x") == 2
    summary = actions["summary"].read_text(encoding="utf-8")
    # The fence is longer than any run of backticks in the message.
    assert "```````text\n" in summary and summary.rstrip().endswith("```````")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round", "nope"], "no round 'nope' (known rounds: demo, discriminate, motivating"),
        (["--round", "_smoke"], "round ID '_smoke' is not valid"),
        (["--round", "a" * 41], "is not valid"),
        (["--round", "smoke,demo"], "name one round, not a list"),
        (["--round", "smoke", "--probes", "core,nope"], "round 'smoke' has no probe 'nope'"),
        (["--round", "smoke", "--probes", "core,core"], "repeats 'core'"),
        (["--round", "smoke", "--probes", "core,"], "has an empty item"),
        (["--round", "smoke", "--probes", ".hidden"], "'.hidden' is not a probe ID"),
        (["--round", "smoke", "--seeds", "1,99"], "round 'smoke' has no seed 99"),
        (["--round", "smoke", "--seeds", "7,07"], "repeats a seed"),
        (["--round", "smoke", "--seeds", "-1"], "'-'"),
        (["--round", "smoke", "--seeds", "١"], "'١'"),
        (["--round", "smoke", "--seeds", "1" * 21], "is not a seed (0 to 4294967295)"),
        (["--round", "smoke", "--seeds", "4294967296"], "is not a seed (0 to 4294967295)"),
        (["--round", "smoke", "--seconds-per-seed", "0"], "--seconds-per-seed must be"),
        (["--round", "smoke", "--seconds-per-seed", "nan"], "--seconds-per-seed must be"),
        (["--round", "smoke", "--max-parallel", "0"], "--max-parallel must be"),
    ],
)
def test_unusable_requests_exit_2_with_a_clear_message(actions, capsys, args, message) -> None:
    assert plan(*args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not actions["output"].exists()
    assert "refused" in actions["summary"].read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("GITHUB_SHA", "abc", "$GITHUB_SHA is not valid"),
        ("GITHUB_STEP_SUMMARY", "/nonexistent/summary.md", "cannot append to /nonexistent"),
    ],
)
def test_an_argparse_refusal_in_a_bad_github_context_is_no_traceback(
    actions, capsys, monkeypatch, variable, value, named
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        plan("--round")  # argparse refuses this itself, before the CLI's error handling
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "expected one argument" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args", [["--round", "-smoke"], ["--round", "--help"], ["--round", "smoke", "--probes", "-h"]]
)
def test_values_that_read_as_options_are_refused_too(actions, capsys, args) -> None:
    # argparse itself refuses these; the refusal still reaches the job summary.
    with pytest.raises(SystemExit) as exited:
        plan(*args)
    assert exited.value.code == 2
    assert "expected one argument" in capsys.readouterr().err
    assert not actions["output"].exists()
    summary = actions["summary"].read_text(encoding="utf-8")
    assert summary.startswith("## mlx-parity plan: refused\n")
    assert "expected one argument" in summary


def big_round(tmp_path: Path, seeds: int) -> Path:
    listed = ", ".join(str(seed) for seed in range(seeds))
    return write_round(
        tmp_path / "matrix",
        "big",
        f'hypothesis = "h"\nprobes = ["reference", "core"]\nseeds = [{listed}]\n'
        "seeds_per_cell = 1\n",
    )


def test_more_than_256_jobs_are_refused(actions, tmp_path, capsys) -> None:
    assert plan("--round", "big", matrix=big_round(tmp_path, 129)) == 2
    err = capsys.readouterr().err
    assert "needs 258 jobs; a GitHub matrix runs at most 256" in err
    assert "seeds_per_cell" in err
    assert not actions["output"].exists()


def test_exactly_256_jobs_are_planned(actions, tmp_path) -> None:
    assert plan("--round", "big", matrix=big_round(tmp_path, 128)) == 0
    got = outputs(actions["output"])
    assert len(json.loads(got["matrix"])["include"]) == 256


def test_summary_flags_a_per_seed_layout_over_the_matrix_limit(actions, tmp_path) -> None:
    listed = ", ".join(str(seed) for seed in range(200))
    matrix = write_round(
        tmp_path / "matrix",
        "wide",
        f'hypothesis = "h"\nprobes = ["reference", "core"]\nseeds = [{listed}]\n',
    )
    assert plan("--round", "wide", matrix=matrix) == 0
    summary = actions["summary"].read_text(encoding="utf-8")
    assert "| one job per (probe, seed) | 400 (over GitHub's 256-job limit) |" in summary
    assert "with 200 seeds, at best a gap of" in summary


# --- the estimate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(0, 0), (1, 1), (59.9, 1), (60, 1), (60.5, 2), (150 + 2 * 45, 4), (150 + 15 * 45, 14)],
)
def test_each_job_is_billed_rounded_up_to_a_whole_minute(seconds: float, minutes: int) -> None:
    assert billed_minutes(seconds) == minutes


def test_float_noise_does_not_bill_an_extra_minute() -> None:
    # 600 seeds of 0.1 s add up to 60.00000000000058 in floating point: still one minute.
    seconds = sum([0.1] * 600)
    assert seconds > 60
    assert billed_minutes(seconds) == 1


def test_wall_clock_schedules_jobs_in_order_on_free_slots() -> None:
    assert wall_clock_seconds([100, 50, 50, 50], max_parallel=2) == 150
    assert wall_clock_seconds([10] * 6, max_parallel=5) == 20
    assert wall_clock_seconds([10, 20, 30], max_parallel=1) == 60
    assert wall_clock_seconds([10, 20, 30], max_parallel=8) == 30
    assert wall_clock_seconds([], max_parallel=5) == 0


def test_smoke_shape_by_hand() -> None:
    # 3 cells × 2 seeds at 45 s/seed, 150 s setup, 5 parallel.
    comparison = compare_layouts([2, 2, 2], 45, 150, 5)
    per_cell, per_seed = comparison.per_cell, comparison.per_seed
    assert (per_cell.layout, per_seed.layout) == (PER_CELL, PER_SEED)
    assert per_cell.job_seconds == (240, 240, 240)  # 150 + 2 × 45
    assert (per_cell.jobs, per_cell.billed_minutes, per_cell.wall_clock_seconds) == (3, 12, 240)
    # 6 jobs of 150 + 45 = 195 s → 4 min each; 5 run at once, the sixth after: 2 × 195.
    assert (per_seed.jobs, per_seed.billed_minutes, per_seed.wall_clock_seconds) == (6, 24, 390)
    assert comparison.minutes_saved == 12


def test_motivating_shape_by_hand() -> None:
    # 6 probes × 15 seeds: 825 s jobs → 14 min; 90 jobs of 195 s → 4 min, 18 waves of 5.
    comparison = compare_layouts([15] * 6, 45, 150, 5)
    assert comparison.per_cell.billed_minutes == 6 * 14
    assert comparison.per_cell.wall_clock_seconds == 2 * 825
    assert comparison.per_seed.billed_minutes == 90 * 4
    assert comparison.per_seed.wall_clock_seconds == 18 * 195
    assert comparison.minutes_saved == 360 - 84


def test_estimate_refuses_meaningless_inputs() -> None:
    with pytest.raises(ValueError, match="seconds_per_seed"):
        compare_layouts([2], 0)
    with pytest.raises(ValueError, match="setup_seconds"):
        compare_layouts([2], 45, setup_seconds=-1)
    with pytest.raises(ValueError, match="max_parallel"):
        wall_clock_seconds([1], 0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45 s"), (240, "4 min"), (390, "6 min 30 s"), (3510, "58 min 30 s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_plan_uses_the_given_estimate_inputs(actions) -> None:
    args = ("--round", "motivating", "--seconds-per-seed", "45", "--setup-seconds", "150")
    assert plan(*args) == 0
    summary = actions["summary"].read_text(encoding="utf-8")
    assert "| one job per probe cell (this plan) | 6 | 84 | 27 min 30 s |" in summary
    assert "| one job per (probe, seed) | 90 | 360 | 58 min 30 s |" in summary
    assert "saves 276 macOS minutes (77%)" in summary
    assert "with 15 seeds, at best a gap of ≥ 40 points" in summary
