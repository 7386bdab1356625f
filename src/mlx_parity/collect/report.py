"""The round report as JSON: the :class:`RoundReport` itself plus the commit statuses to post.

Shape: every field of ``RoundReport`` (``schema``, ``round_id``, ``probes``, ``gates``,
``problems``, …) and ``statuses``, a list of ``{state, context, description, target_url}``:
one per probe (context ``mlx-parity/<round>/<probe>``) and the round's own last (context
``mlx-parity/<round>``).
Non-finite floats are written as the strings "NaN", "Infinity", "-Infinity"; the file is
strict JSON (``allow_nan=False`` would refuse anything else).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from ..errors import UsageError
from ..github.limits import fit_status_description
from ..github.models import CommitStatus
from ..names import probe_context, round_context
from .compare import ProbeReport, RoundReport, commit_state
from .gather import REPORT_SCHEMA
from .markdown import percent, trace_text


def probe_description(report: RoundReport, probe: ProbeReport) -> str:
    """``8/15 pass (53%), trace identical 15/15, no difference detected (p=0.625)``; failed
    gates first, then a detected pass-rate difference (a green status never hides one), so
    they survive GitHub's 140-character cut."""
    failed = [g.name for g in report.gates_for(probe.id) if not g.passed]
    run, passes = probe.seeds_run(), probe.passes()
    parts = [f"{passes}/{run} pass ({percent(passes / run)})" if run else "no seed ran"]
    if probe.outcome_differs:
        parts.insert(0, f"⚠ {probe.verdict}")
    if probe.seed_insensitive:
        parts.insert(0, "⚠ seeds have no effect")
    if probe.is_baseline:
        parts.append("baseline")
    else:
        parts.append(f"trace {trace_text(probe)}")
        if probe.verdict and not probe.outcome_differs:
            parts.append(probe.verdict)
    text = ", ".join(parts)
    if failed:
        text = f"failed {'/'.join(dict.fromkeys(failed))}: {text}"
    return fit_status_description(text)


def round_description(report: RoundReport) -> str:
    failed = report.failed_gates()
    shape = f"{len(report.probes)} probes × {len(report.seeds)} seeds"
    if not failed:
        text = f"round {report.round_id}: {shape}, all {len(report.gates)} gates hold"
    else:
        names = ", ".join(g.title for g in failed)
        text = f"round {report.round_id}: {len(failed)}/{len(report.gates)} gates failed ({names})"
    return fit_status_description(text)


def build_statuses(report: RoundReport, target_url: str | None = None) -> list[CommitStatus]:
    # (state, context, description): one per probe, the round's own last.
    entries = [
        (probe.state, probe_context(report.round_id, probe.id), probe_description(report, probe))
        for probe in report.probes
    ]
    entries.append(
        (commit_state(report.gates), round_context(report.round_id), round_description(report))
    )
    return [
        CommitStatus(state=state, context=context, description=description, target_url=target_url)
        for state, context, description in entries
    ]


def report_json(report: RoundReport, target_url: str | None = None) -> str:
    """The report object with ``statuses`` as its last key, compact (every seed's losses make
    it tens of megabytes at 10,000 artifacts). pydantic writes the report (non-finite floats as
    strings) ten times faster than ``json.dumps``; the float-free statuses are spliced in."""
    body = report.model_dump_json(by_alias=True)
    statuses = [s.model_dump(mode="json") for s in build_statuses(report, target_url)]
    # body ends with the object's closing brace; the statuses become its last member.
    listed = json.dumps(statuses, allow_nan=False, separators=(",", ":"))
    return f'{body[:-1]},"statuses":{listed}}}\n'


def parse_report(text: str, source: str) -> RoundReport:
    """A report from its JSON text; ``source`` names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    found = data.get("schema") if isinstance(data, dict) else None
    if found != REPORT_SCHEMA:
        raise UsageError(f"{source}: not a round report (schema {found!r}, want {REPORT_SCHEMA!r})")
    # Statuses are derived from the rest, so they are rebuilt rather than read back.
    data.pop("statuses", None)
    try:
        return RoundReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{source}: invalid field {where!r}: {first['msg']}") from None
