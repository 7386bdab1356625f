"""``mlx-parity compare A B``: what changed between two rounds' reports ("Round BM → BO").

A and B are report JSON files written by ``collect --json``, directories holding a
``report.json``, or ``run:<ID>``. Per probe, side by side: pass rates, outcome verdicts against
the baseline, trace verdicts, and a conclusion — "no change detected" with what these seeds
could have detected at best, or every change named: a pass rate that changed by the paired
test, a trace verdict that changed, a new or moved divergence step, a changed batch structure.

The two rounds run the same seeds, so pass rates are compared seed by seed: the exact McNemar
test on the seeds that flipped between A and B (seeds that errored or are missing in either
round are left out), Holm-adjusted across the probes compared, at the reports' α. A p-value
that merely crosses α between the rounds is not a change.

Exit status: 0 when no change is detected, 4 when something changed, 2 when a report cannot be
read, 3 when a run's report cannot be fetched.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..collect.compare import ALPHA, ProbeReport, RoundReport
from ..collect.markdown import DASH, escape_cell, pass_rate_text, table, trace_text
from ..collect.report import parse_report
from ..errors import ExitCode, UsageError
from ..github.runs import fetch_run_artifacts, parse_run_source
from ..names import REPORT_ARTIFACT, REPORT_JSON
from ..stats import PairedOutcome, best_case_floor, holm_adjust, paired_outcome

UNCHANGED = "no change detected"


def load_report(source: str | Path) -> RoundReport:
    """A round report from a JSON file, a directory holding ``report.json`` or ``run:<ID>``:
    the one entry point for every report source, so the comparison never sees where from."""
    run_id = parse_run_source(str(source))
    if run_id is not None:
        return _report_of_run(run_id)
    path = Path(source)
    if path.is_dir():
        path = path / REPORT_JSON
    if not path.is_file():
        raise UsageError(
            f"{source}: no report here (expected a report JSON file or a directory "
            f"holding {REPORT_JSON})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the report: {exc}") from None
    return parse_report(text, str(path))


def _report_of_run(run_id: int) -> RoundReport:
    """The ``parity-report`` artifact of a workflow run, downloaded through the REST API."""
    with tempfile.TemporaryDirectory(prefix="mlx-parity-run-") as tmp:
        fetch_run_artifacts(run_id, REPORT_ARTIFACT, Path(tmp))
        found = sorted(Path(tmp).rglob(REPORT_JSON))
        if not found:
            raise UsageError(f"run {run_id}: no {REPORT_ARTIFACT!r} artifact with {REPORT_JSON}")
        return parse_report(found[0].read_text(encoding="utf-8"), f"run {run_id}")


@dataclass
class ProbeChange:
    """One probe in both rounds (or only one) and what changed between them."""

    probe: str
    a: ProbeReport | None
    b: ProbeReport | None
    paired: PairedOutcome | None = None
    pass_p_adjusted: float | None = None
    floor: str = ""
    changes: list[str] = field(default_factory=list)

    @property
    def pass_p(self) -> float | None:
        return None if self.paired is None or self.paired.n == 0 else self.paired.mcnemar_p

    @property
    def conclusion(self) -> str:
        if self.changes:
            return "; ".join(self.changes)
        return f"{UNCHANGED} (these seeds could detect {self.floor} at best)"


def paired_change(a: ProbeReport, b: ProbeReport) -> PairedOutcome:
    """A's and B's pass flags on the seeds both ran to the end, paired."""
    return paired_outcome(*({s.seed: bool(s.passed) for s in p.judged_seeds()} for p in (a, b)))


def _divergence_change(a: ProbeReport, b: ProbeReport) -> str | None:
    first_a, first_b = a.first_divergence(), b.first_divergence()
    step_a = first_a.divergence_step if first_a else None
    step_b = first_b.divergence_step if first_b else None
    if step_a == step_b:
        return None
    if step_a is None:
        return f"new divergence at step {step_b}"
    if step_b is None:
        return f"divergence gone (was step {step_a})"
    return f"first divergence step {step_a} → {step_b}"


def _structure_change(a: ProbeReport, b: ProbeReport) -> str | None:
    first_a, first_b = a.first_structural(), b.first_structural()
    text_a = first_a.structural if first_a else None
    text_b = first_b.structural if first_b else None
    if text_a == text_b:
        return None
    return f"structure: {text_a or 'same as baseline'} → {text_b or 'same as baseline'}"


def describe_changes(
    a: ProbeReport, b: ProbeReport, paired: PairedOutcome, adjusted_p: float | None
) -> list[str]:
    changes = []
    if adjusted_p is not None and adjusted_p < ALPHA:
        changes.append(
            f"pass rate {a.passes()}/{a.seeds_run()} → {b.passes()}/{b.seeds_run()}: "
            f"{paired.passes_lost} seeds pass→fail, {paired.passes_gained} fail→pass "
            f"(exact McNemar p={adjusted_p:.3g}, Holm)"
        )
    if a.seeds_run() != b.seeds_run():
        changes.append(f"seeds run to the end {a.seeds_run()} → {b.seeds_run()}")
    if trace_text(a) != trace_text(b):
        changes.append(f"trace {trace_text(a)} → {trace_text(b)}")
    firsts = (_divergence_change(a, b), _structure_change(a, b))
    return changes + [change for change in firsts if change is not None]


def compare_reports(a: RoundReport, b: RoundReport) -> list[ProbeChange]:
    """Every probe of either round, in A's order then B's new ones."""
    in_a = {p.id: p for p in a.probes}
    in_b = {p.id: p for p in b.probes}
    ids = list(in_a) + [probe_id for probe_id in in_b if probe_id not in in_a]
    rows = [ProbeChange(probe_id, in_a.get(probe_id), in_b.get(probe_id)) for probe_id in ids]
    for row in rows:
        row.paired = None if row.a is None or row.b is None else paired_change(row.a, row.b)
    raw = {row.probe: row.pass_p for row in rows if row.pass_p is not None}
    adjusted = holm_adjust(raw)
    family_alpha = ALPHA / max(len(raw), 1)
    for row in rows:
        if row.a is None:
            row.changes.append(f"only in {b.round_id}")
        elif row.b is None:
            row.changes.append(f"only in {a.round_id}")
        else:
            assert row.paired is not None
            row.pass_p_adjusted = adjusted.get(row.probe)
            row.floor = best_case_floor(row.paired.n, family_alpha)
            row.changes = describe_changes(row.a, row.b, row.paired, row.pass_p_adjusted)
    return rows


def round_notes(a: RoundReport, b: RoundReport) -> list[str]:
    """Differences in how the rounds were set up, which qualify every row."""
    notes = []
    if a.baseline != b.baseline:
        notes.append(f"baselines differ: {a.baseline} → {b.baseline}")
    if a.seeds != b.seeds:
        notes.append(f"seed lists differ: {len(a.seeds)} → {len(b.seeds)} seeds")
    if a.gate_settings != b.gate_settings:
        notes.append(f"gate settings differ: {a.gate_settings} → {b.gate_settings}")
    return notes


def render_comparison(a: RoundReport, b: RoundReport, rows: list[ProbeChange]) -> str:
    name_a, name_b = a.round_id, b.round_id
    if name_a == name_b:
        name_a, name_b = f"{name_a} (A)", f"{name_b} (B)"
    headers = ("probe", f"pass {name_a}", f"pass {name_b}", "McNemar p (Holm)")
    headers += (f"outcome {name_a}", f"outcome {name_b}", f"trace {name_a}", f"trace {name_b}")
    headers += ("conclusion",)

    def cells(probe: ProbeReport | None) -> tuple[str, str, str]:
        if probe is None:
            return DASH, DASH, DASH
        return pass_rate_text(probe), probe.verdict or DASH, trace_text(probe)

    body = []
    for row in rows:
        pass_a, verdict_a, trace_a = cells(row.a)
        pass_b, verdict_b, trace_b = cells(row.b)
        p_text = (
            DASH
            if row.pass_p is None or row.pass_p_adjusted is None
            else f"{row.pass_p:.3g} ({row.pass_p_adjusted:.3g})"
        )
        side_by_side = [pass_a, pass_b, p_text, verdict_a, verdict_b, trace_a, trace_b]
        body.append([f"`{row.probe}`", *side_by_side, escape_cell(row.conclusion)])
    changed = sum(1 for row in rows if row.changes)
    verdict_line = (
        f"**{name_a} → {name_b}: {UNCHANGED}** for any of the {len(rows)} probes."
        if not changed
        else f"**{name_a} → {name_b}: {changed} of {len(rows)} probes changed.**"
    )
    lines = [f"## mlx-parity · round {name_a} → {name_b}", "", verdict_line, ""]
    notes = round_notes(a, b)
    if notes:
        lines += [*(f"- ⚠️ {escape_cell(note)}" for note in notes), ""]
    lines += [*table(headers, body), ""]
    lines.append(
        "Pass rates: seed by seed, the exact McNemar test on the seeds that flipped between the "
        f"rounds, Holm across {len(rows)} probes, α = {ALPHA:g}. Detectability in {name_b}: "
        f"{b.detectability}."
    )
    return "\n".join(lines) + "\n"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("a", metavar="A", help="earlier report: JSON file, folder or run:<ID>")
    parser.add_argument("b", metavar="B", help="later report: JSON file, folder or run:<ID>")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    a, b = load_report(args.a), load_report(args.b)
    rows = compare_reports(a, b)
    print(render_comparison(a, b, rows), end="")
    return ExitCode.DIFFERENCE if any(row.changes for row in rows) else ExitCode.OK
