"""``mlx-parity compare``: what it says when the training changed between two rounds (the
settings each probe trained under, its losses), how it words what the seeds could detect, and
its help. Synthetic seed results: no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import CATALOG, ROUND, collect, full_round, make_result, make_round, trace
from mlx_parity.artifact import SeedResult
from mlx_parity.cli import main
from mlx_parity.collect.compare import RoundReport
from mlx_parity.collect.report import report_json
from mlx_parity.commands import plain_text
from mlx_parity.commands.compare import (
    SETTINGS_ABOVE,
    UNCHANGED,
    compare_reports,
    load_report,
)
from mlx_parity.errors import ExitCode
from mlx_parity.matrix import ResolvedRound, Round, resolve

PROBES = ("reference", "core", "clip")
SEEDS = (1, 7, 42)


def round_with(settings: dict | None = None) -> ResolvedRound:
    """The round of these tests, its probes trained under ``settings`` (knob overrides)."""
    round_ = Round(
        id=ROUND, hypothesis="h", probes=list(PROBES), seeds=list(SEEDS), settings=settings or {}
    )
    return resolve(round_, CATALOG)


def trained_with(result: SeedResult, **knobs: object) -> SeedResult:
    """``result`` as a run under other knobs records it."""
    return result.model_copy(update={"config": {**result.config, **knobs}})


def later_losses(seed: int) -> list[float]:
    """The seed's losses had training changed from the second step on."""
    losses = trace(seed)
    return losses[:1] + [loss * 0.9 for loss in losses[1:]]


def written(directory: Path, report: RoundReport) -> Path:
    directory.mkdir(parents=True)
    (directory / "report.json").write_text(report_json(report))
    return directory


def compare(a: Path, b: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["compare", str(a), str(b)])
    return status, capsys.readouterr().out


# --- the settings each probe trained under -----------------------------------------------------


def test_the_report_records_the_config_each_probe_trained_with(tmp_path):
    round_ = round_with()
    core_1 = trained_with(make_result("core", 1), lr=4e-4)
    full_round(tmp_path, round_, {("core", 1): core_1})
    report = collect(tmp_path, round_)
    # The lowest seed's record, as for ``knobs``; seed 7's other lr is a config-mismatch problem.
    assert report.probe("core").config == core_1.config
    assert report.probe("reference").config == make_result("reference", 1).config
    assert load_report(written(tmp_path / "report", report)).probe("core").config == core_1.config


def test_a_settings_change_every_probe_shares_is_said_once_and_is_a_change(tmp_path, capsys):
    """The audit's case: the round's lr changed, every loss changed, no pass rate did."""
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_with())
    overrides = {
        (probe, seed): trained_with(make_result(probe, seed, losses=later_losses(seed)), lr=4e-4)
        for probe in PROBES
        for seed in SEEDS
    }
    full_round(after, round_with({"lr": 4e-4}), overrides)
    a = written(tmp_path / "A", collect(before, round_with()))
    b = written(tmp_path / "B", collect(after, round_with({"lr": 4e-4})))

    rows = compare_reports(load_report(a), load_report(b))
    assert [row.settings for row in rows] == [["lr 0.001 → 0.0004"]] * 3
    largest = max(abs(x * 0.9 - x) for seed in SEEDS for x in trace(seed)[1:])
    assert [row.changes for row in rows] == [
        [f"losses differ on 3/3 seeds (from step 2, |Δloss| up to {largest:.3g})"]
    ] * 3
    status, out = compare(a, b, capsys)
    assert status == ExitCode.DIFFERENCE
    assert "- ⚠️ every probe trained under other settings: lr 0.001 → 0.0004\n" in out
    assert "3 of 3 probes changed" in out and UNCHANGED not in out
    assert out.count(SETTINGS_ABOVE) == 3


def test_a_probe_trained_under_other_settings_is_changed_even_with_the_same_losses(
    tmp_path, capsys
):
    """max_new_tokens changes no loss: the row still names the knob, and it is a change."""
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_)
    overrides = {
        ("core", s): trained_with(make_result("core", s), max_new_tokens=32) for s in SEEDS
    }
    full_round(after, round_, overrides)
    a = written(tmp_path / "A", collect(before, round_))
    b = written(tmp_path / "B", collect(after, round_))

    rows = {row.probe: row for row in compare_reports(load_report(a), load_report(b))}
    assert rows["core"].settings == ["max_new_tokens 16 → 32"]
    assert rows["core"].conclude().startswith(f"settings: max_new_tokens 16 → 32; {UNCHANGED}")
    assert rows["clip"].settings == [] and not rows["clip"].changed
    status, out = compare(a, b, capsys)
    assert status == ExitCode.DIFFERENCE
    assert "every probe" not in out and "1 of 3 probes changed" in out


def test_a_plugin_given_other_options_is_a_settings_change(tmp_path):
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_)
    options = {"impl": "masked"}
    given = {
        ("core", s): make_result("core", s).model_copy(update={"options": options}) for s in SEEDS
    }
    full_round(after, round_, given)
    a = written(tmp_path / "A", collect(before, round_))
    b = written(tmp_path / "B", collect(after, round_))
    rows = {row.probe: row for row in compare_reports(load_report(a), load_report(b))}
    assert rows["core"].settings == ['options {} → {"impl": "masked"}']
    assert rows["core"].changed and not rows["clip"].changed


def test_a_probe_whose_seeds_trained_under_different_settings_is_named(tmp_path):
    """Only seed 42 of B's core retrained at another lr: its lowest seed's config is A's, so
    the knobs alone would say nothing changed."""
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_)
    full_round(after, round_, {("core", 42): trained_with(make_result("core", 42), lr=4e-4)})
    a = written(tmp_path / "A", collect(before, round_))
    b = written(tmp_path / "B", collect(after, round_))
    rows = {row.probe: row for row in compare_reports(load_report(a), load_report(b))}
    assert rows["core"].settings == [
        "its seeds in B trained under different settings (see that report's problems)"
    ]
    assert rows["core"].changed and not rows["clip"].changed


def test_a_report_without_recorded_settings_still_compares_with_a_note(tmp_path, capsys):
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    full_round(tmp_path / "seeds", round_)
    report = collect(tmp_path / "seeds", round_)
    new = written(tmp_path / "new", report)
    # A report.json written before probes recorded their config.
    old = tmp_path / "old.json"
    data = json.loads(report_json(report))
    for probe in data["probes"]:
        del probe["config"]
    old.write_text(json.dumps(data))

    assert all(probe.config is None for probe in load_report(old).probes)
    status, out = compare(old, new, capsys)
    assert status == ExitCode.OK
    assert (
        "- ⚠️ training settings could not be compared: T1 (A)'s report does not record them"
    ) in out
    status, out = compare(old, old, capsys)
    assert "neither report records them" in out


def test_a_changed_trainer_is_a_settings_change_even_in_an_old_report(tmp_path, capsys):
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    full_round(tmp_path / "seeds", round_)
    data = json.loads(report_json(collect(tmp_path / "seeds", round_)))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(data))
    for probe in data["probes"]:
        del probe["config"]
    data["probes"][1]["trainer"] = "plugin:somebody.trainer:train"
    b.write_text(json.dumps(data))

    rows = compare_reports(load_report(a), load_report(b))
    assert rows[1].settings == ["trainer core → plugin:somebody.trainer:train"]
    assert compare(a, b, capsys)[0] == ExitCode.DIFFERENCE


# --- losses ----------------------------------------------------------------------------------


def test_losses_that_differ_are_a_change_though_traces_and_pass_rates_agree(tmp_path, capsys):
    """Every probe's losses moved together (a new MLX, say): each still matches the baseline
    bit for bit, so only the losses themselves show the training changed."""
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_)
    moved = {(p, s): make_result(p, s, losses=later_losses(s)) for p in PROBES for s in SEEDS}
    full_round(after, round_, moved)
    a = written(tmp_path / "A", collect(before, round_))
    b = written(tmp_path / "B", collect(after, round_))

    rows = compare_reports(load_report(a), load_report(b))
    assert all(row.settings == [] for row in rows)
    assert all(row.changes[0].startswith("losses differ on 3/3 seeds (from step 2") for row in rows)
    assert compare(a, b, capsys)[0] == ExitCode.DIFFERENCE


def test_losses_name_a_change_of_device_and_a_nan_in_both_rounds_is_no_change(tmp_path):
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    nan_losses = trace(7)
    nan_losses[9] = math.nan
    nan = make_result("core", 7, losses=nan_losses, status="nonfinite", passed=False)
    before, after = tmp_path / "before", tmp_path / "after"
    full_round(before, round_, {("core", 7): nan})
    on_cpu = make_result("clip", 1, losses=later_losses(1))
    on_cpu = on_cpu.model_copy(
        update={"environment": on_cpu.environment.model_copy(update={"device": "cpu"})}
    )
    full_round(after, round_, {("core", 7): nan, ("clip", 1): on_cpu})

    rows = {r.probe: r for r in compare_reports(collect(before, round_), collect(after, round_))}
    assert rows["core"].changes == [] and not rows["core"].changed
    (losses, *_) = rows["clip"].changes
    assert losses.startswith("losses differ on 1/3 seeds (from step 2")
    assert losses.endswith(", trained on other devices: gpu → cpu")


@pytest.mark.parametrize("longer", ["A", "B"])
def test_a_trace_that_extends_the_other_differs_past_the_shorter(tmp_path, longer):
    """More steps, the same first 30: the losses differ from step 31, whichever round ran more."""
    round_ = make_round(probes=PROBES, seeds=SEEDS)
    short, long = tmp_path / "short", tmp_path / "long"
    full_round(short, round_)
    full_round(
        long, round_, {("core", s): make_result("core", s, losses=trace(s, 40)) for s in SEEDS}
    )
    reports = {"A": collect(long, round_), "B": collect(short, round_)}
    if longer == "B":
        reports = {"A": reports["B"], "B": reports["A"]}
    rows = {r.probe: r for r in compare_reports(reports["A"], reports["B"])}
    assert rows["core"].changes[0] == "losses differ on 3/3 seeds (from step 31)"


# --- wording ---------------------------------------------------------------------------------


def test_undetectable_changes_are_worded_with_the_threshold_the_footer_explains(tmp_path, capsys):
    """Two seeds, three probes: the row and the footer state one threshold, Holm's α/3."""
    round_ = make_round(probes=PROBES, seeds=(1, 42))
    full_round(tmp_path / "seeds", round_)
    a = written(tmp_path / "A", collect(tmp_path / "seeds", round_))
    (row, *_) = compare_reports(load_report(a), load_report(a))
    assert row.conclude() == (
        f"{UNCHANGED}, nor could one be: both seeds flipping the same way would give p = 0.5, "
        "and a change needs p below 0.0167"
    )
    status, out = compare(a, a, capsys)
    assert status == ExitCode.OK
    assert "Holm asks the smallest of the 3 to be below 0.05/3 = 0.0167" in out
    # The round's own detectability (against its baseline, at α/2) is another test: not shown.
    assert "0.025" not in out and "all 2" not in out and "0.0166667" not in out


def test_one_seed_is_worded_as_one(tmp_path):
    round_ = make_round(probes=PROBES, seeds=(1,))
    full_round(tmp_path, round_)
    report = collect(tmp_path, round_)
    (row, *_) = compare_reports(report, report)
    assert row.conclude().startswith(f"{UNCHANGED}, nor could one be: the one seed flipping")


def test_gate_settings_name_only_the_keys_that_differ(tmp_path, capsys):
    full_round(tmp_path / "seeds", make_round(probes=PROBES, seeds=SEEDS))
    a = written(tmp_path / "A", collect(tmp_path / "seeds", make_round(probes=PROBES)))
    strict = make_round(probes=PROBES, cf_loss_max=1.5)
    b = written(tmp_path / "B", collect(tmp_path / "seeds", strict))
    status, out = compare(a, b, capsys)
    assert "- ⚠️ gate settings differ: cf_loss_max 0.5 → 1.5\n" in out
    assert "require_all_seeds" not in out
    assert status == ExitCode.OK  # how a round is judged is no change in its training


def test_a_round_verdict_that_flips_and_other_seeds_are_named(tmp_path, capsys):
    full_round(tmp_path / "seeds", make_round(probes=PROBES, seeds=(1, 7, 9, 42)))
    a = written(tmp_path / "A", collect(tmp_path / "seeds", make_round(probes=PROBES)))
    # Every cf_loss (0.0004) is above this smoke limit: the same training now fails the round.
    strict = make_round(probes=PROBES, seeds=(1, 7, 9), cf_loss_max=0.0001)
    b = written(tmp_path / "B", collect(tmp_path / "seeds", strict))
    status, out = compare(a, b, capsys)
    assert "- ⚠️ round verdict: passed → failed\n" in out
    assert "- ⚠️ seed lists differ: 3 → 3 seeds (only in A: 42; only in B: 9)\n" in out


@pytest.mark.parametrize("command", ["compare", "collect", "init"])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "`" not in out
    assert f"mlx-parity {command}" in out
    assert plain_text("see :mod:`..traces` and ``x``") == "see ..traces and x"
