"""The round report as Markdown: one row per probe (knobs, pass rate, agreement with the
baseline, McNemar, trace verdict, first divergence), then gates, problems, detectability, and a
per-seed table collapsed in ``<details>``.

Cells are padded so the raw text reads as a table too (job logs show it unrendered). The
per-seed table is fenced by HTML comments so :func:`fit_summary` can shorten it first when the
report would exceed GitHub's 1 MiB job-summary limit.
"""

from __future__ import annotations

import html
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from ..stats import percent, whole_percent
from ..traces import (
    Allowance,
    format_limit,
    format_size,
    loss_difference_text,
    norm_ratio_text,
    plural,
)
from .compare import ProbeReport, RoundReport, SeedComparison, name_seeds
from .gather import Problem

SUMMARY_LIMIT = 1_048_576
DETAILS_START = "<!-- mlx-parity:details:start -->"
DETAILS_END = "<!-- mlx-parity:details:end -->"
# Longer lists go to the JSON and HTML reports; the summary names the first ones.
MAX_PROBLEM_LINES = 100
GENERATION_CHARS = 48
DASH = "—"

# Underscores stay: GitHub never emphasises inside words, and artifact names are full of them.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|])")
# Text that needs no escaping at all: no special character, no HTML, single spaces only.
_PLAIN = re.compile(r"(?:[^\\`*\[\]|&<>\s]+(?: [^\\`*\[\]|&<>\s]+)*)?")


def escape_cell(text: str) -> str:
    """Free text (a generation, an error) made safe for one table cell: no HTML, no code
    spans, links or bold, no pipes or line breaks that would end the cell."""
    if _PLAIN.fullmatch(text):  # most cells (verdicts, numbers) need nothing
        return text
    flat = " ".join(text.split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def code_span(text: str) -> str:
    """Literal text (a file name with ``__`` in it) shown as code, raw and rendered alike."""
    flat = " ".join(text.split())
    # A span holding backticks needs a longer fence, padded so edge backticks stay content.
    return f"`` {flat} ``" if "`" in flat else f"`{flat}`"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table whose columns are padded to equal width."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(map(str.ljust, cells, widths)) + " |"

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


# --- cell texts shared with the HTML page -----------------------------------------------------


def pass_rate_text(probe: ProbeReport) -> str:
    """``10/15 = 67% (42–85%)``: passes over seeds run, with the Wilson 95% interval."""
    passes, run = probe.passes(), probe.seeds_run()
    errored = f", {probe.errored()} errored" if probe.errored() else ""
    if run == 0:
        return f"0/0{errored}"
    low, high = probe.pass_ci
    return f"{passes}/{run} = {percent(passes / run)} ({percent(low)}–{percent(high)}){errored}"


def agreement_text(probe: ProbeReport) -> str:
    return DASH if probe.outcome is None else f"{probe.outcome.agreements}/{probe.outcome.n}"


def mcnemar_text(probe: ProbeReport) -> str:
    # No seed pair (every seed errored or missing): a p-value of 1 would read as "tested".
    if probe.outcome is None or probe.holm_p is None or probe.outcome.n == 0:
        return DASH
    return f"{probe.outcome.mcnemar_p:.3g} ({probe.holm_p:.3g})"


def trace_text(probe: ProbeReport) -> str:
    if probe.is_baseline:
        return "baseline"
    total = len(probe.seeds)
    return ", ".join(f"{v} {n}/{total}" for v, n in probe.trace_counts().items()) or DASH


def divergence_text(probe: ProbeReport) -> str:
    parts = []
    first = probe.first_divergence()
    # A structural first divergence is the first structural difference below (the same seed
    # and step), said once.
    if first is not None and first.divergence_signal != "structure":
        size = first.divergence_size
        if first.divergence_signal == "grad_norm" and size is not None:
            what = norm_ratio_text(size, explained=False)
        elif first.divergence_signal == "length":
            what = "trace length differs"
        elif size is None or not math.isfinite(size):
            what = "non-finite loss"
        else:
            what = loss_difference_text(size)
        # Worded as the verdicts are ("diverges at step k: …"), the signal named.
        parts.append(f"step {first.divergence_step}: {what} (seed {first.seed})")
    structural = probe.first_structural()
    if structural is not None:
        parts.append(f"{structural.structural} (seed {structural.seed})")
    if (scale := probe.gradient_scale()) is not None:
        parts.append(
            f"{norm_ratio_text(scale, explained=False)} the baseline's at the first update"
        )
    return "; ".join(parts) or DASH


def size_text(value: float | None) -> str:
    """A loss or a difference of losses, or a dash when there is none."""
    return DASH if value is None else format_size(value)


def knob_value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def knobs_text(probe: ProbeReport) -> str:
    if probe.is_baseline:
        parts = ["(baseline)"]
    else:
        parts = [f"{k}={knob_value_text(v)}" for k, v in probe.knobs.items()]
        if probe.unhonoured:
            parts.append(f"cannot honour: {', '.join(probe.unhonoured)}")
    if probe.mixed_settings:
        parts.append("⚠️ its seeds trained under different settings (see Problems)")
    return ", ".join(parts) or DASH


def seed_trace_text(seed: SeedComparison) -> str:
    return "baseline" if seed.trace is None else (seed.trace_detail or seed.trace)


def seed_structure_text(seed: SeedComparison, allowance: Allowance) -> str:
    """The seed's first structural difference (or "same"), and its gradient-norm ratio at the
    first update whenever that ratio is outside what the verdicts allow (``allowance``, the
    round's): the rule that makes a gradient norm diverge, so every seed of a probe is judged
    alike and no seed shows a ratio its verdict calls noise."""
    if seed.trace in (None, "unavailable"):
        return DASH  # the baseline itself, or nothing to compare with
    text = seed.structural or "same"
    ratio = seed.grad_norm_ratio
    if ratio is None or abs(ratio - 1) <= allowance.grad_norm:
        return text
    return f"{text}; {norm_ratio_text(ratio, explained=False)} at the first update"


def shorten(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters, the last one "…" (None: no limit)."""
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def generation_text(generation: str | None) -> str:
    return DASH if generation is None else shorten(" ".join(generation.split()), GENERATION_CHARS)


def family_note(report: RoundReport) -> str:
    m = len(report.compared_probes())
    if m <= 1:
        return f"α = {report.alpha:g}"
    return f"Holm over {m} probes: worst case α = {report.alpha:g}/{m}"


# --- the document ------------------------------------------------------------------------------

# The summary table's columns: a header, and the cell a probe shows under it as plain text.
SUMMARY_COLUMNS: tuple[tuple[str, Callable[[ProbeReport], str]], ...] = (
    ("probe", lambda p: p.id),
    ("trainer", lambda p: p.trainer),
    ("knobs vs baseline", knobs_text),
    ("pass rate (95% CI)", pass_rate_text),
    ("agree", agreement_text),
    ("McNemar p (Holm)", mcnemar_text),
    ("outcome", lambda p: p.verdict or DASH),
    ("trace", trace_text),
    ("first divergence", divergence_text),
    ("max cf_loss", lambda p: size_text(p.max_cf_loss())),
)
SUMMARY_HEADERS = tuple(header for header, _ in SUMMARY_COLUMNS)

DETAIL_HEADERS = (
    "probe",
    "seed",
    "status",
    "pass",
    "baseline pass",
    "trace",
    "structure",
    "max abs Δloss",
    "cf_loss",
    "generation",
    "device",
)


def summary_cells(p: ProbeReport) -> list[str]:
    """One probe's row of the summary table as plain text (the HTML page shares it)."""
    return [cell(p) for _, cell in SUMMARY_COLUMNS]


def summary_rows(report: RoundReport) -> list[list[str]]:
    return [
        [f"`{probe_id}`", trainer, escape_cell(knobs), *rest]
        for probe_id, trainer, knobs, *rest in map(summary_cells, report.probes)
    ]


def yes_no(value: bool | None) -> str:
    return DASH if value is None else ("yes" if value else "no")


def detail_rows(report: RoundReport) -> list[list[str]]:
    allowance = report.trace_allowance()
    return [
        [
            f"`{probe.id}`",
            str(s.seed),
            s.status,
            yes_no(s.passed),
            yes_no(s.baseline_passed),
            escape_cell(seed_trace_text(s)),
            seed_structure_text(s, allowance),
            size_text(s.max_abs_dloss),
            size_text(s.cf_loss),
            escape_cell(generation_text(s.generation)),
            escape_cell(s.device or DASH),
        ]
        for probe in report.probes
        for s in probe.seeds
    ]


def render_markdown(report: RoundReport) -> str:
    n_probes, n_seeds = len(report.probes), len(report.seeds)
    outcome = "✅ passed" if report.passed else "❌ failed"
    differing = [p.id for p in report.compared_probes() if p.outcome_differs]
    if differing:
        # A passing round whose outcomes differ says so where a reader looks first.
        outcome += f" · ⚠️ pass rate differs: {', '.join(differing)}"
    lines = [
        f"## mlx-parity · round `{report.round_id}` · {outcome}",
        "",
        f"> {escape_cell(report.hypothesis)}",
        "",
        f"Baseline `{report.baseline}` · {shape_text(report)} · {smoke_gate_text(report)} · "
        f"traces compared {report.allowance} · "
        f"{report.files_seen} JSON files read",
        "",
        *table(SUMMARY_HEADERS, summary_rows(report)),
        "",
        *pass_rate_chart(report),
        *_gate_lines(report),
        "",
        *device_lines(report),
        *noise_lines(report),
        *seed_lines(report),
        *_problem_lines(report.problems),
        f"**Detectability:** {report.detectability} ({family_note(report)}).",
        *_probe_detectability_lines(report),
        "",
        DETAILS_START,
        f"<details><summary>Per-seed detail ({n_probes * n_seeds} rows)</summary>",
        "",
        *table(DETAIL_HEADERS, detail_rows(report)),
        "",
        "</details>",
        DETAILS_END,
        "",
    ]
    return "\n".join(lines)


def pass_rate_chart(report: RoundReport) -> list[str]:
    """Pass rate per probe as a Mermaid bar chart, which GitHub renders in a job summary, a
    check run and a pull request comment (raw text elsewhere, still readable)."""
    probes = [p for p in report.probes if p.seeds_run()]
    if not probes:
        return []
    names = ", ".join(f'"{p.id}"' for p in probes)
    bars = ", ".join(str(whole_percent(p.passes() / p.seeds_run())) for p in probes)
    return [
        "```mermaid",
        "xychart-beta",
        '    title "Pass rate per probe (%)"',
        f"    x-axis [{names}]",
        '    y-axis "pass rate (%)" 0 --> 100',
        f"    bar [{bars}]",
        "```",
        "",
    ]


def noise_lines(report: RoundReport) -> list[str]:
    """What "equivalent" rests on: the measured floor, or why verdicts are bitwise."""
    if (floor := report.noise_floor) is not None:
        return [f"**Noise floor:** {floor.describe()}.", ""]
    if report.gate_settings.get("trace_tolerance") is None:
        return [
            "**Noise floor:** none recorded by the baseline's seeds, so only bitwise-identical "
            "traces agree.",
            "",
        ]
    return []


# Why a probe's seeds can all give one trace; the terminal report says it too.
SEED_INSENSITIVE = "every seed gave the same loss trace (an unseeded LoRA init or batch order?)"


def seed_lines(report: RoundReport) -> list[str]:
    """Probes whose seeds change nothing: their pass rates count one run many times."""
    same = [p.id for p in report.probes if p.seed_insensitive]
    if not same:
        return []
    return [
        f"⚠️ Seeds have no effect on {', '.join(f'`{p}`' for p in same)}: {SEED_INSENSITIVE}, so "
        "its pass rate is one run counted once per seed.",
        "",
    ]


def device_names(report: RoundReport) -> list[str]:
    return sorted({s.device for p in report.probes for s in p.seeds if s.device})


def cross_device_text(report: RoundReport) -> str | None:
    """The seed comparisons whose two sides trained on different devices, as a warning; None
    when there are none."""
    crossed = [
        f"{p.id} seed {s.seed}" for p in report.compared_probes() for s in p.seeds if s.cross_device
    ]
    if not crossed:
        return None
    count = f"{len(crossed)} seed {plural(len(crossed), 'comparison')}"
    return (
        f"{count} across devices ({name_seeds(crossed)}): traces from two devices differ in the "
        "last bits, so bitwise verdicts do not apply."
    )


def smoke_gate_text(report: RoundReport) -> str:
    """ "smoke gate cf_loss < 1.5": the threshold as the round set it (both reports' headers)."""
    return f"smoke gate cf_loss < {format_limit(report.gate_settings['cf_loss_max'])}"


def shape_text(report: RoundReport) -> str:
    """ "6 probes × 8 seeds"."""
    probes, seeds = len(report.probes), len(report.seeds)
    return f"{probes} {plural(probes, 'probe')} × {seeds} {plural(seeds, 'seed')}"


def device_lines(report: RoundReport) -> list[str]:
    """Which devices the seeds trained on, and the comparisons that crossed devices."""
    devices = device_names(report)
    if not devices:
        return []
    lines = [f"**Devices:** {', '.join(f'`{escape_cell(d)}`' for d in devices)}", ""]
    if (crossed := cross_device_text(report)) is not None:
        lines += [f"⚠️ {crossed}", ""]
    return lines


def _gate_lines(report: RoundReport) -> list[str]:
    held = sum(g.passed for g in report.gates)
    return [
        f"### Gates: {held}/{len(report.gates)} hold",
        "",
        *(
            f"- {'✅' if g.passed else '❌'} **{g.title}**: {g.detail}"
            for g in report.gates_failing_first()
        ),
    ]


def _problem_lines(problems: Sequence[Problem]) -> list[str]:
    if not problems:
        return []
    ordered = sorted(problems, key=lambda p: not p.blocking)
    lines = [f"### Problems ({len(problems)})", ""]
    lines += [
        f"- {'❌' if p.blocking else '⚠️'} **{p.kind}** {code_span(p.subject)}: "
        f"{escape_cell(p.detail)}"
        for p in ordered[:MAX_PROBLEM_LINES]
    ]
    if len(ordered) > MAX_PROBLEM_LINES:
        lines.append(f"- … and {len(ordered) - MAX_PROBLEM_LINES} more in the JSON report")
    return [*lines, ""]


def _probe_detectability_lines(report: RoundReport) -> list[str]:
    """A probe compared on fewer seeds than planned gets its own sentence."""
    lines = [
        f"- `{p.id}`: {p.detectability}."
        for p in report.compared_probes()
        if p.outcome is not None and p.outcome.n != len(report.seeds) and p.detectability
    ]
    return ["", *lines] if lines else []


# --- fitting into the job summary --------------------------------------------------------------


# What fit_summary's notes call the limit by default: the job summary's.
JOB_SUMMARY = "1 MiB job-summary"


def truncation_note(shown: int, total: int, limit_name: str = JOB_SUMMARY) -> str:
    return (
        f"\n> ✂️ **Truncated:** {shown:,} of {total:,} per-seed rows shown to fit GitHub's "
        f"{limit_name} limit; the JSON and HTML reports have all of them.\n"
    )


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def fit_summary(markdown: str, limit: int = SUMMARY_LIMIT, limit_name: str = JOB_SUMMARY) -> str:
    """``markdown`` within ``limit`` bytes (so characters too): per-seed rows are dropped first
    (from the end), with a visible note saying how many are shown; only if the rest alone is
    too large is the text cut at a line boundary, again with a note naming ``limit_name``."""
    if _size(markdown) <= limit:
        return markdown
    start, end = markdown.find(DETAILS_START), markdown.find(DETAILS_END)
    if start >= 0 and end > start:
        end += len(DETAILS_END)
        head, block, tail = markdown[:start], markdown[start:end], markdown[end:]
        fitted = _fit_details(head, block, tail, limit, limit_name)
        if fitted is not None:
            return fitted
        markdown = head + tail
    return _cut(markdown, limit, limit_name)


def _fit_details(head: str, block: str, tail: str, limit: int, limit_name: str) -> str | None:
    lines = block.split("\n")
    table_lines = [i for i, line in enumerate(lines) if line.startswith("| ")]
    if len(table_lines) < 2:
        return None
    # The first two table lines are the header and its separator.
    first_row, last_row = table_lines[0] + 2, table_lines[-1] + 1
    before, rows, after = lines[:first_row], lines[first_row:last_row], lines[last_row:]
    total = len(rows)
    fixed = _size(head + tail) + _size("\n".join(before + after)) + 1
    budget = limit - fixed - _size(truncation_note(total, total, limit_name))
    if budget < 0:
        return None
    # The rows that fit from the top: running sizes only grow, so they are a prefix.
    kept = bisect_right(list(accumulate(_size(row) + 1 for row in rows)), budget)
    shortened = "\n".join(before + rows[:kept] + after)
    return head + shortened + truncation_note(kept, total, limit_name) + tail


def _cut(markdown: str, limit: int, limit_name: str) -> str:
    note = (
        f"\n\n> ✂️ **Truncated:** the report exceeds GitHub's {limit_name} limit; "
        "the JSON and HTML reports are complete.\n"
    )
    budget = max(limit - _size(note), 0)
    text = markdown.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    cut_at = text.rfind("\n")
    return (text[:cut_at] if cut_at > 0 else text) + note
