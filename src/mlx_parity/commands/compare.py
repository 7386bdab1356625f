"""``mlx-parity compare A B``: what changed between two rounds' reports (a round, then the same
round after a fix).

A and B are report JSON files written by ``collect --json``, directories holding a
``report.json``, or ``run:<ID>``. Per probe, side by side: pass rates, outcome verdicts against
the baseline, trace verdicts, and a conclusion — "no change detected" with what these seeds
could have detected at best, or every change named: the settings the probe trained under (its
trainer and each knob, old → new; stated once when every probe shares the change), its losses
on the seeds both rounds ran, a pass rate that changed by the paired test, a trace verdict
that changed, a new or moved divergence step, a changed batch structure.

The two rounds run the same seeds, so pass rates are compared seed by seed: the exact McNemar
test on the seeds that flipped between A and B (seeds that errored or are missing in either
round are left out), Holm-adjusted across the probes compared, at the reports' α. A p-value
that merely crosses α between the rounds is not a change. Losses are compared bit for bit on
every seed that ran to the end in both rounds: one device reruns a round to the bit, so any
difference means the training changed (or moved to another device, which is named).

Exit status: 0 when no change is detected; 4 when a probe changed, and a probe trained under
other settings or giving other losses has changed even when its pass rate has not (the
training is not what it was); 2 when a report cannot be read; 3 when a run's report cannot be
fetched. Differences in how the rounds were judged (gate settings, seed lists, the baseline)
are noted above the table but are no change by themselves, nor is a report too old to record
its probes' settings (noted too: those settings could not be compared).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..collect.compare import ALPHA, ProbeReport, RoundReport, name_seeds
from ..collect.markdown import DASH, escape_cell, knob_value_text, pass_rate_text, table, trace_text
from ..collect.report import parse_report
from ..errors import ExitCode, UsageError
from ..github.runs import fetch_run_artifacts, parse_run_source
from ..knobs import CLIP_ARGUMENTS
from ..names import REPORT_ARTIFACT, REPORT_JSON
from ..stats import (
    PairedOutcome,
    best_case_floor,
    exact_mcnemar_p,
    holm_adjust,
    minimal_detectable_discordance,
    paired_outcome,
)
from ..traces import first_divergence, format_size
from . import plain_text

UNCHANGED = "no change detected"
# A row's settings change when every probe shares it: stated once, above the table.
SETTINGS_ABOVE = "settings changed as noted above"


def load_report(source: str | Path) -> RoundReport:
    """A round report from a JSON file, a directory holding ``report.json`` or ``run:<ID>``:
    the one entry point for every report source, so the comparison never sees where from."""
    run_id = parse_run_source(str(source))
    if run_id is not None:  # its parity-report artifact, downloaded through the REST API
        with tempfile.TemporaryDirectory(prefix="mlx-parity-run-") as tmp:
            fetch_run_artifacts(run_id, REPORT_ARTIFACT, Path(tmp))
            found = sorted(Path(tmp).rglob(REPORT_JSON))
            if not found:
                raise UsageError(
                    f"run {run_id}: no {REPORT_ARTIFACT!r} artifact with {REPORT_JSON}"
                )
            return parse_report(found[0].read_text(encoding="utf-8"), f"run {run_id}")
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


@dataclass
class ProbeChange:
    """One probe in both rounds (or only one) and what changed between them."""

    probe: str
    a: ProbeReport | None
    b: ProbeReport | None
    paired: PairedOutcome | None = None
    pass_p_adjusted: float | None = None
    # "no change detected" and what these seeds could have detected.
    unchanged: str = UNCHANGED
    # What the probe trained under differently in B, "lr 0.0003 → 0.0004" (settings_change).
    settings: list[str] = field(default_factory=list)
    # What its results did differently: losses, pass rate, traces, divergence, structure.
    changes: list[str] = field(default_factory=list)

    @property
    def pass_p(self) -> float | None:
        return None if self.paired is None or self.paired.n == 0 else self.paired.mcnemar_p

    @property
    def changed(self) -> bool:
        """Other settings are a change by themselves: the training is not what it was."""
        return bool(self.settings or self.changes)

    def conclude(self, *, settings_noted: bool = False) -> str:
        """The conclusion cell; ``settings_noted``: the settings change is every probe's, and
        stated once above the table."""
        parts = self.changes or [self.unchanged]
        if self.settings:
            noted = SETTINGS_ABOVE if settings_noted else f"settings: {', '.join(self.settings)}"
            parts = [noted, *parts]
        return "; ".join(parts)


def unchanged_text(n_seeds: int, alpha: float) -> str:
    """The conclusion of a probe with no change: what ``n_seeds`` paired seeds could have
    detected at ``alpha`` (Holm's strictest threshold: see :func:`footer`)."""
    if n_seeds == 0:
        return f"{UNCHANGED}: no seed ran to the end in both rounds"
    if minimal_detectable_discordance(n_seeds, alpha) is None:
        flips = {1: "the one seed flipping", 2: "both seeds flipping the same way"}.get(
            n_seeds, f"all {n_seeds} seeds flipping the same way"
        )
        best_p = exact_mcnemar_p(n_seeds, 0)
        return (
            f"{UNCHANGED}, nor could one be: {flips} would give p = {best_p:.3g}, and a change "
            f"needs p below {format_size(alpha)}"
        )
    return f"{UNCHANGED}; these seeds could detect {best_case_floor(n_seeds, alpha)} at best"


def setting_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], skip: Collection[str] = ()
) -> list[str]:
    """``cf_loss_max 1.5 → 2`` for each key whose value differs (A's keys first), none other."""
    return [
        f"{k} {_setting_text(old, k)} → {_setting_text(new, k)}"
        for k in dict.fromkeys([*old, *new])
        if k not in skip and (k not in old or k not in new or old[k] != new[k])
    ]


def _setting_text(settings: Mapping[str, Any], key: str) -> str:
    # A key one report lacks: a setting added or removed between the versions that wrote them.
    return knob_value_text(settings[key]) if key in settings else "(absent)"


def settings_change(a: ProbeReport, b: ProbeReport) -> list[str]:
    """The trainer and each knob whose value B's probe trained under differs from A's; the knobs
    only when both reports record them (``config``, absent from older reports). Clip arguments are
    compared by the policy they resolve to, ``clip``, as ``knobs`` compares them."""
    changes = [f"trainer {a.trainer} → {b.trainer}"] if a.trainer != b.trainer else []
    # A probe's config is its lowest seed's: when its seeds disagree, that one speaks for none.
    changes += [
        f"its seeds in {name} trained under different settings (see that report's problems)"
        for name, probe in (("A", a), ("B", b))
        if probe.mixed_settings
    ]
    if a.options is not None and b.options is not None and a.options != b.options:
        changes.append(f"options {json.dumps(a.options)} → {json.dumps(b.options)}")
    if a.config is None or b.config is None:
        return changes
    return changes + setting_changes(a.config, b.config, skip=CLIP_ARGUMENTS)


def loss_change(a: ProbeReport, b: ProbeReport) -> str | None:
    """``losses differ on 2/2 seeds (from step 1, |Δloss| up to 0.34)``: each seed that ran to
    the end in both rounds, its loss trace in A against B's, bit for bit."""
    in_b = {s.seed: s for s in b.judged_seeds()}
    pairs = [(s, in_b[s.seed]) for s in a.judged_seeds() if s.seed in in_b]
    # The one trace comparator, bit for bit: a NaN in both rounds is the same result, and a
    # trace that extends the other parts one step past the shorter.
    parted = [(x, y, c) for x, y in pairs if (c := first_divergence(x.losses, y.losses))]
    if not parted:
        return None
    first = min(c.step or 0 for _, _, c in parted)
    sizes = [abs(p - q) for x, y, _ in parted for p, q in zip(x.losses, y.losses, strict=False)]
    largest = max((size for size in sizes if math.isfinite(size)), default=None)
    text = f"losses differ on {len(parted)}/{len(pairs)} seeds (from step {first}"
    # None or 0: the traces differ only in length or in where a loss is not finite.
    text += f", |Δloss| up to {format_size(largest)})" if largest else ")"
    moved = sorted({f"{x.device} → {y.device}" for x, y, _ in parted if x.device != y.device})
    return text + (f", trained on other devices: {', '.join(moved)}" if moved else "")


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
    trace = f"trace {trace_text(a)} → {trace_text(b)}" if trace_text(a) != trace_text(b) else None
    found = (loss_change(a, b), trace, _divergence_change(a, b), _structure_change(a, b))
    return changes + [change for change in found if change is not None]


def compare_reports(a: RoundReport, b: RoundReport) -> list[ProbeChange]:
    """Every probe of either round, in A's order then B's new ones."""
    in_a = {p.id: p for p in a.probes}
    in_b = {p.id: p for p in b.probes}
    rows = [ProbeChange(i, in_a.get(i), in_b.get(i)) for i in dict.fromkeys([*in_a, *in_b])]
    for row in rows:
        row.paired = None if row.a is None or row.b is None else paired_change(row.a, row.b)
    adjusted = holm_adjust({row.probe: row.pass_p for row in rows if row.pass_p is not None})
    family_alpha = strictest_alpha(rows)
    for row in rows:
        if row.a is None:
            row.changes.append(f"only in {b.round_id}")
        elif row.b is None:
            row.changes.append(f"only in {a.round_id}")
        else:
            assert row.paired is not None
            row.pass_p_adjusted = adjusted.get(row.probe)
            row.unchanged = unchanged_text(row.paired.n, family_alpha)
            row.settings = settings_change(row.a, row.b)
            row.changes = describe_changes(row.a, row.b, row.paired, row.pass_p_adjusted)
    return rows


def tested(rows: list[ProbeChange]) -> int:
    """How many probes the paired test compares (both rounds ran some seed of them): Holm's m."""
    return sum(1 for row in rows if row.pass_p is not None)


def strictest_alpha(rows: list[ProbeChange]) -> float:
    """Holm's threshold for the smallest of m p-values, α/m: a raw p below it is a change
    whatever the other probes do (the next is held to α/(m−1), and so on up to α)."""
    return ALPHA / max(tested(rows), 1)


def shared_settings(rows: list[ProbeChange]) -> list[str]:
    """The settings change every probe in both rounds shares (one probe is no pattern): said
    once for the round rather than on every row; empty when there is none."""
    both = [row for row in rows if row.a is not None and row.b is not None]
    if len(both) < 2 or any(row.settings != both[0].settings for row in both):
        return []
    return both[0].settings


def round_notes(a: RoundReport, b: RoundReport, rows: list[ProbeChange]) -> list[str]:
    """Differences in how the rounds were set up, which qualify every row."""
    notes = []
    if a.passed != b.passed:
        # Gates and problems outside any row (a gate setting, a missing artifact) can decide it.
        verdicts = ["passed" if report.passed else "failed" for report in (a, b)]
        notes.append(f"round verdict: {verdicts[0]} → {verdicts[1]}")
    if a.baseline != b.baseline:
        notes.append(f"baselines differ: {a.baseline} → {b.baseline}")
    if a.seeds != b.seeds:
        only = [
            f"only in {name}: {name_seeds([str(s) for s in mine if s not in theirs])}"
            for name, mine, theirs in (("A", a.seeds, b.seeds), ("B", b.seeds, a.seeds))
            if set(mine) - set(theirs)
        ]
        detail = f" ({'; '.join(only)})" if only else " (the same seeds, in another order)"
        notes.append(f"seed lists differ: {len(a.seeds)} → {len(b.seeds)} seeds{detail}")
    if a.gate_settings != b.gate_settings:
        changed = setting_changes(a.gate_settings, b.gate_settings)
        notes.append(f"gate settings differ: {', '.join(changed)}")
    shared = shared_settings(rows)
    if shared:
        notes.append(f"every probe trained under other settings: {', '.join(shared)}")
    unrecorded = [
        name
        for name, report in zip(round_names(a, b), (a, b), strict=True)
        if any(probe.config is None for probe in report.probes)
    ]
    if unrecorded:
        which = (
            "neither report records"
            if len(unrecorded) == 2
            else f"{unrecorded[0]}'s report does not record"
        )
        notes.append(
            f"training settings could not be compared: {which} them (written before reports "
            "did; only the trainers were compared)"
        )
    return notes


def round_names(a: RoundReport, b: RoundReport) -> tuple[str, str]:
    """What the comparison calls each round: its ID, with (A) and (B) when both share one."""
    if a.round_id == b.round_id:
        return f"{a.round_id} (A)", f"{b.round_id} (B)"
    return a.round_id, b.round_id


def render_comparison(a: RoundReport, b: RoundReport, rows: list[ProbeChange]) -> str:
    name_a, name_b = round_names(a, b)
    headers = ("probe", f"pass {name_a}", f"pass {name_b}", "McNemar p (Holm)")
    headers += (f"outcome {name_a}", f"outcome {name_b}", f"trace {name_a}", f"trace {name_b}")
    headers += ("conclusion",)

    def cells(probe: ProbeReport | None) -> tuple[str, str, str]:
        if probe is None:
            return DASH, DASH, DASH
        return pass_rate_text(probe), probe.verdict or DASH, trace_text(probe)

    settings_noted = bool(shared_settings(rows))
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
        conclusion = row.conclude(settings_noted=settings_noted)
        body.append([f"`{row.probe}`", *side_by_side, escape_cell(conclusion)])
    changed = sum(1 for row in rows if row.changed)
    verdict_line = (
        f"**{name_a} → {name_b}: {UNCHANGED}** for any of the {len(rows)} probes."
        if not changed
        else f"**{name_a} → {name_b}: {changed} of {len(rows)} probes changed.**"
    )
    lines = [f"## mlx-parity · round {name_a} → {name_b}", "", verdict_line, ""]
    notes = round_notes(a, b, rows)
    if notes:
        lines += [*(f"- ⚠️ {escape_cell(note)}" for note in notes), ""]
    lines += [*table(headers, body), "", footer(rows)]
    return "\n".join(lines) + "\n"


def footer(rows: list[ProbeChange]) -> str:
    """How the rows were decided, and why the threshold they state is α/m rather than α."""
    m = tested(rows)
    if m < 2:
        holm = f"a pass rate changed when p is below α = {ALPHA:g}."
    else:
        rest = (
            f"the other below {ALPHA:g}"
            if m == 2
            else f"the next below {ALPHA:g}/{m - 1} and so on up to {ALPHA:g} for the largest"
        )
        holm = (
            f"the p in brackets is Holm-adjusted across the {m} probes tested, and a pass rate "
            f"changed when it is below α = {ALPHA:g}. In raw p, Holm asks the smallest of the "
            f"{m} to be below {ALPHA:g}/{m} = {format_size(strictest_alpha(rows))}, {rest} "
            "(each only once those before it were); what each row says these seeds could "
            "detect is stated at the first, the one threshold that holds whatever the other "
            "probes do."
        )
    return (
        "Pass rates: seed by seed, the exact McNemar test on the seeds that flipped between the "
        f"rounds; {holm} Losses: every seed both rounds ran to the end, bit for bit."
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = plain_text(__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("a", metavar="A", help="earlier report: JSON file, folder or run:<ID>")
    parser.add_argument("b", metavar="B", help="later report: JSON file, folder or run:<ID>")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    a, b = load_report(args.a), load_report(args.b)
    rows = compare_reports(a, b)
    print(render_comparison(a, b, rows), end="")
    return ExitCode.DIFFERENCE if any(row.changed for row in rows) else ExitCode.OK
