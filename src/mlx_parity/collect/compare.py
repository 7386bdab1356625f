"""Compare every probe of a round with its baseline, seed by seed, in the order a reader needs:

1. **Trace**: every recorded signal step by step (:mod:`..traces`: the batch's shape, rows,
   order, target tokens and updates so far, the gradient norm, the loss) is ``identical``
   (bitwise), ``equivalent`` (inside the noise floor the baseline's cell measured,
   :mod:`..noise`), ``close`` (inside ``gates.trace_tolerance``) or ``diverges at step k: …``,
   naming the earliest signal that parted. The first structural difference (``structural
   divergence at step k: <probe> vs <baseline>``) and the gradient-norm ratio at the first update
   are also kept on their own: padding a short row diverges yet can leave every loss equal.
2. **Outcome**: pass rates with Wilson intervals, paired agreement, exact McNemar, Holm across
   probes (baseline excluded), verdict and detectability, all from :mod:`..stats`.
3. **Gates**: smoke (cf_loss), run errors, parity expectations, artifacts.

A seed whose run failed (status ``error``) is counted and gated (``errors``) but, like a seed
without a valid artifact, left out of pass rates and pairing: neither is ever a failure. A NaN
loss is a result: that seed did not pass. Probes are described by what their seeds recorded
(``trainer``, ``config``), not by today's matrix files, and every seed whose recorded config
disagrees with the round file is named.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..artifact import SeedResult
from ..knobs import CLIP_ARGUMENTS
from ..matrix import ResolvedProbe, ResolvedRound
from ..noise import NoiseFloor, noise_floor
from ..probes import Expectation
from ..stats import (
    PairedOutcome,
    describe_detectability,
    holm_adjust,
    paired_outcome,
    verdict,
    wilson_interval,
)
from ..traces import (
    Allowance,
    Signal,
    TraceVerdict,
    compare_steps,
    first_update_norm_ratio,
    format_limit,
    format_size,
    loss_trace,
    plural,
)
from .gather import REPORT_SCHEMA, Gathered, Problem

# Significance level of every outcome test in a report.
ALPHA = 0.05
# How many seeds a gate's detail names before it says "and N more".
NAMED_SEEDS = 5

SeedStatus = Literal["ok", "nonfinite", "error", "missing"]
GateName = Literal["smoke", "errors", "parity", "artifacts", "outcome"]
CommitState = Literal["success", "failure", "error"]

# Report order of trace verdicts: the most alarming first.
TRACE_ORDER: tuple[TraceVerdict, ...] = (
    "diverges",
    "close",
    "equivalent",
    "identical",
    "unavailable",
)
# The verdicts each parity expectation accepts on every compared seed ("diverges" needs one).
ACCEPTS: dict[str, tuple[TraceVerdict, ...]] = {
    "identical": ("identical",),
    "equivalent": ("identical", "equivalent"),
    "close": ("identical", "equivalent", "close"),
}

# Non-finite floats (a NaN loss, an infinite |Δ|) are written as "NaN"/"Infinity" strings.
_REPORT_CONFIG = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class GateResult(BaseModel):
    model_config = _REPORT_CONFIG

    name: GateName
    # None for a round-level gate.
    probe: str | None
    passed: bool
    detail: str
    # Failed for want of data (no seed ran to the end, no baseline seed to compare against),
    # not by judging what trained: the status is "error", the round could not be judged.
    unjudged: bool = False

    @property
    def title(self) -> str:
        return self.name if self.probe is None else f"{self.name} · {self.probe}"


@dataclass(slots=True, kw_only=True)
class SeedComparison:
    """One seed of one probe, and (for a probe other than the baseline) how it compares.

    A dataclass rather than a model: a 10,000-artifact collect builds 10,000 of them from values
    pydantic has already validated, and a model's construction costs ~40x more. Reading a
    report back validates it in full (pydantic honours this config for dataclass fields)."""

    __pydantic_config__ = _REPORT_CONFIG

    seed: int
    file: str | None = None
    status: SeedStatus
    error: str | None = None
    passed: bool | None = None
    baseline_passed: bool | None = None
    cf_loss: float | None = None
    post_train_loss: float | None = None
    generation: str | None = None
    losses: list[float] = field(default_factory=list)
    # Below: None for the baseline's own seeds.
    trace: TraceVerdict | None = None
    trace_detail: str | None = None
    divergence_step: int | None = None
    # Which signal parted first, and its size there: |Δloss| for "loss", the gradient-norm ratio
    # for "grad_norm", None for "structure", "length" or a non-finite loss.
    divergence_signal: Signal | None = None
    divergence_size: float | None = None
    max_abs_dloss: float | None = None
    structural: str | None = None
    structural_step: int | None = None
    # Probe gradient norm over the baseline's at their first update (see first_update_norm_ratio).
    grad_norm_ratio: float | None = None
    # The device the seed trained on (its self-check label, e.g. "gpu (Apple M2)"), and for a
    # probe's seed, "<probe device> vs <baseline device>" when the two trained on different
    # devices: their last bits differ, so bitwise verdicts do not apply.
    device: str | None = None
    cross_device: str | None = None

    @property
    def present(self) -> bool:
        return self.status != "missing"

    @property
    def judged(self) -> bool:
        """Ran to the end (neither missing nor errored): what pass rates and pairing count."""
        return self.status in ("ok", "nonfinite")


class ProbeReport(BaseModel):
    model_config = _REPORT_CONFIG

    id: str
    trainer: str
    description: str = ""
    expect: Expectation
    is_baseline: bool
    # Knobs whose value differs from the baseline's (Knobs.differing_from).
    knobs: dict[str, Any]
    # Every resolved knob it trained with (see recorded_config): what ``compare`` checks two
    # rounds' training settings by; None in a report written before it was recorded.
    config: dict[str, Any] | None = None
    # The options its plugin trainer was given, as recorded; None in an older report.
    options: dict[str, Any] | None = None
    # Its seeds recorded more than one trainer, config or options: its pass rate and verdicts
    # pool runs of different trainings (the config-mismatch problems name the seeds).
    mixed_settings: bool = False
    # Settings a plugin declared its trainer cannot honour, with why (as its seeds recorded).
    unhonoured: dict[str, str] = Field(default_factory=dict)
    seeds: list[SeedComparison]
    pass_ci: tuple[float, float]
    # Paired statistics against the baseline; None for the baseline itself.
    outcome: PairedOutcome | None = None
    holm_p: float | None = None
    verdict: str | None = None
    # The paired test found a pass-rate difference from the baseline (Holm-adjusted).
    outcome_differs: bool = False
    # Every seed that ran gave the very same loss trace: the seed changes nothing (the sign of
    # an unseeded LoRA init, or a fixed batch order), so "n seeds" are one run repeated.
    seed_insensitive: bool = False
    detectability: str | None = None
    state: CommitState

    def judged_seeds(self) -> list[SeedComparison]:
        return [s for s in self.seeds if s.judged]

    def passes(self) -> int:
        return sum(1 for s in self.judged_seeds() if s.passed)

    def seeds_run(self) -> int:
        return len(self.judged_seeds())

    def errored(self) -> int:
        return sum(1 for s in self.seeds if s.status == "error")

    def trace_counts(self) -> dict[TraceVerdict, int]:
        counts = Counter(s.trace for s in self.seeds)
        return {v: counts[v] for v in TRACE_ORDER if counts[v]}

    def first_divergence(self) -> SeedComparison | None:
        """The seed whose loss trace leaves the baseline's earliest (lowest seed on a tie)."""
        diverging = [s for s in self.seeds if s.trace == "diverges" and s.divergence_step]
        return min(diverging, key=lambda s: (s.divergence_step, s.seed), default=None)

    def gradient_scale(self) -> float | None:
        """The probe's gradient norm over the baseline's at the first update, when every seed
        agrees on it (within 1%) and it is not 1 (beyond 1%): gradients scaled by a constant,
        which Adam's normalisation all but hides from the losses."""
        ratios = [s.grad_norm_ratio for s in self.seeds if s.grad_norm_ratio is not None]
        if not ratios or any(abs(r / ratios[0] - 1) > 0.01 for r in ratios):
            return None
        return ratios[0] if abs(ratios[0] - 1) > 0.01 else None

    def first_structural(self) -> SeedComparison | None:
        structural = [s for s in self.seeds if s.structural_step is not None]
        return min(structural, key=lambda s: (s.structural_step, s.seed), default=None)

    def max_cf_loss(self) -> float | None:
        """The largest cf_loss over the seeds that have one; NaN if any of them is NaN."""
        values = [s.cf_loss for s in self.seeds if s.cf_loss is not None]
        if any(math.isnan(v) for v in values):
            return math.nan
        return max(values, default=None)


class RoundReport(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings", populate_by_name=True)

    schema_: Literal["mlx-parity/round-report/v1"] = Field(REPORT_SCHEMA, alias="schema")
    round_id: str
    hypothesis: str
    baseline: str
    seeds: list[int]
    gate_settings: dict[str, Any]
    alpha: float = ALPHA
    # Baseline first, then the other probes in round order.
    probes: list[ProbeReport]
    gates: list[GateResult]
    problems: list[Problem]
    detectability: str
    files_seen: int
    passed: bool
    # What the verdicts allowed: the measured noise floor (None: none recorded, or an explicit
    # trace_tolerance set), and that allowance in words.
    noise_floor: NoiseFloor | None = None
    allowance: str = "bit for bit"

    def probe(self, probe_id: str) -> ProbeReport:
        return {p.id: p for p in self.probes}[probe_id]

    def gates_for(self, probe_id: str | None) -> list[GateResult]:
        return [g for g in self.gates if g.probe == probe_id]

    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def gates_failing_first(self) -> list[GateResult]:
        """Every gate, the failing ones first (what a reader opened the report for)."""
        return sorted(self.gates, key=lambda g: g.passed)

    def compared_probes(self) -> list[ProbeReport]:
        return [p for p in self.probes if not p.is_baseline]

    def trace_allowance(self) -> Allowance:
        """What the trace verdicts allowed, rebuilt from what the report keeps (its explicit
        tolerance, else its noise floor): the band and markers the reports draw use this."""
        return Allowance.for_round(self.gate_settings.get("trace_tolerance"), self.noise_floor)


# --- structure and trace ---------------------------------------------------------------------


def compare_seed(
    seed: int,
    probe: SeedResult | None,
    baseline: SeedResult | None,
    allowance: Allowance,
    file: str | None,
    is_baseline: bool,
    baseline_losses: list[float] | None,
) -> SeedComparison:
    """``baseline_losses`` is the baseline seed's loss trace (built once per seed, however many
    probes compare with it, the baseline's own included), None when the baseline has none."""
    if probe is None:
        return SeedComparison(
            seed=seed,
            status="missing",
            baseline_passed=None if baseline is None else baseline.passed,
            trace=None if is_baseline else "unavailable",
            trace_detail=None if is_baseline else "no valid artifact",
        )
    fields: dict[str, Any] = dict(
        seed=seed,
        file=file,
        status=probe.status,
        error=probe.error,
        passed=probe.passed,
        cf_loss=probe.cf_loss,
        post_train_loss=probe.post_train_loss,
        generation=probe.generation,
        losses=baseline_losses if is_baseline else loss_trace(probe.rows),
        device=probe.environment.device,
    )
    if is_baseline:
        return SeedComparison(**fields)
    fields["baseline_passed"] = None if baseline is None else baseline.passed
    unavailable = _why_unavailable(probe, baseline)
    if unavailable is not None:
        return SeedComparison(**fields, trace="unavailable", trace_detail=unavailable)
    assert baseline is not None and baseline_losses is not None  # _why_unavailable said so
    trace = compare_steps(probe.rows, baseline.rows, allowance, (fields["losses"], baseline_losses))
    detail = trace.describe()
    if trace.structure:
        step, difference = trace.structure
        fields["structural_step"] = step
        fields["structural"] = f"structural divergence at step {step}: {difference}"
    if probe.environment.device != baseline.environment.device:
        fields["cross_device"] = f"{probe.environment.device} vs {baseline.environment.device}"
        detail += f" (across devices, {fields['cross_device']}: not a bitwise comparison)"
    return SeedComparison(
        **fields,
        trace=trace.verdict,
        trace_detail=detail,
        grad_norm_ratio=first_update_norm_ratio(probe.rows, baseline.rows),
        divergence_step=trace.step,
        divergence_signal=trace.signal,
        divergence_size=trace.size,
        max_abs_dloss=trace.max_abs,
    )


def _why_unavailable(probe: SeedResult, baseline: SeedResult | None) -> str | None:
    # A failed run's partial trace would report a divergence that is really a crash.
    if baseline is None:
        return "baseline has no valid artifact for this seed"
    if probe.status == "error":
        return "the run failed"
    if baseline.status == "error":
        return "the baseline run failed"
    return None


# --- gates -------------------------------------------------------------------------------------


def name_seeds(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMED_SEEDS])
    more = len(items) - NAMED_SEEDS
    return shown + (f" and {more} more" if more > 0 else "")


def _cf_text(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def smoke_gate(probe_id: str, seeds: Sequence[SeedComparison], cf_loss_max: float) -> GateResult:
    """Every seed that ran to the end has a finite cf_loss below the limit (None/NaN fail)."""
    judged = [s for s in seeds if s.judged]
    if not judged:
        detail = "no seed to judge"
        return GateResult(name="smoke", probe=probe_id, passed=False, detail=detail, unjudged=True)
    failing = [
        s
        for s in judged
        if s.cf_loss is None or not math.isfinite(s.cf_loss) or s.cf_loss >= cf_loss_max
    ]
    limit = format_limit(cf_loss_max)
    if failing:
        named = name_seeds([f"seed {s.seed} ({_cf_text(s.cf_loss)})" for s in failing])
        detail = f"cf_loss not < {limit} on {len(failing)}/{len(judged)} seeds: {named}"
        return GateResult(name="smoke", probe=probe_id, passed=False, detail=detail)
    worst = max(s.cf_loss for s in judged if s.cf_loss is not None)
    detail = f"cf_loss < {limit} on {len(judged)}/{len(judged)} seeds (max {format_size(worst)})"
    return GateResult(name="smoke", probe=probe_id, passed=True, detail=detail)


def errors_gate(
    probe_id: str, seeds: Sequence[SeedComparison], max_error_seeds: int
) -> GateResult | None:
    """Only stated when some seed ended in error."""
    errored = [s for s in seeds if s.status == "error"]
    if not errored:
        return None
    named = name_seeds([f"seed {s.seed}" for s in errored])
    count = f"{len(errored)} {plural(len(errored), 'seed')}"
    detail = f"{count} ended in error ({named}); at most {max_error_seeds} allowed"
    return GateResult(
        name="errors", probe=probe_id, passed=len(errored) <= max_error_seeds, detail=detail
    )


def parity_gate(
    probe_id: str, expect: Expectation, seeds: Sequence[SeedComparison]
) -> GateResult | None:
    """The probe's declared expectation of its loss traces; None when it declares none."""
    if expect == "any":
        return None
    compared = [s for s in seeds if s.trace not in (None, "unavailable")]
    if not compared:
        detail = f"expects {expect}, but no seed could be compared"
        return GateResult(name="parity", probe=probe_id, passed=False, detail=detail, unjudged=True)
    found = Counter(s.trace for s in compared)
    counts = ", ".join(f"{v} {found[v]}/{len(compared)}" for v in TRACE_ORDER[:4] if found[v])
    if expect == "diverges":
        passed = any(s.trace == "diverges" for s in compared)
    else:
        passed = all(s.trace in ACCEPTS[expect] for s in compared)
    detail = f"expects {expect}: {counts}"
    structural = [s for s in compared if s.structural_step is not None]
    if structural and expect in ACCEPTS:
        detail += f" (structure differs on {len(structural)} {plural(len(structural), 'seed')})"
    return GateResult(name="parity", probe=probe_id, passed=passed, detail=detail)


def probe_artifacts_gate(
    probe_id: str, seeds: Sequence[SeedComparison], require_all: bool
) -> GateResult | None:
    """Only stated when some planned seed of the probe has no valid artifact."""
    missing = [s for s in seeds if not s.present]
    if not missing:
        return None
    named = name_seeds([f"seed {s.seed}" for s in missing])
    detail = f"{len(missing)}/{len(seeds)} seeds without a valid artifact: {named}"
    if not require_all:
        detail += " (not required by the round)"
    return GateResult(name="artifacts", probe=probe_id, passed=not require_all, detail=detail)


def round_artifacts_gate(
    problems: Sequence[Problem], planned: int, require_all: bool
) -> GateResult:
    blocking = [p for p in problems if p.blocking]
    if not blocking:
        detail = f"all {planned} planned artifacts present and valid"
        return GateResult(name="artifacts", probe=None, passed=True, detail=detail)
    summary = ", ".join(f"{n} {kind}" for kind, n in Counter(p.kind for p in blocking).items())
    count = f"{len(blocking)} blocking {plural(len(blocking), 'problem')}"
    detail = f"{count}: {summary} (listed under Problems)"
    if not require_all:
        detail += "; not required by the round"
    return GateResult(name="artifacts", probe=None, passed=not require_all, detail=detail)


def outcome_gate(
    probe_id: str, outcome: PairedOutcome, adjusted_p: float | None, differs: bool
) -> GateResult:
    """Opt-in (``gates.outcome``): the probe's pass rate must not differ from the baseline's
    by the paired exact McNemar test, Holm-adjusted across the round's probes."""
    if outcome.n == 0 or adjusted_p is None:
        detail = "no seed pairs to test"
        return GateResult(
            name="outcome", probe=probe_id, passed=False, detail=detail, unjudged=True
        )
    counts = (
        f"{outcome.passes_lost} lost, {outcome.passes_gained} gained over {outcome.n} seeds "
        f"(p={adjusted_p:.3g}, Holm)"
    )
    detail = "pass rate differs from the baseline: " if differs else "no difference detected: "
    return GateResult(name="outcome", probe=probe_id, passed=not differs, detail=detail + counts)


def seed_insensitive(seeds: Sequence[SeedComparison]) -> bool:
    traces = [s.losses for s in seeds if s.judged and s.losses]
    return len(traces) >= 2 and all(t == traces[0] for t in traces[1:])


def _judged_flags(results: dict[int, SeedResult]) -> dict[int, bool]:
    """Pass flags of the seeds that ran to the end (an errored seed is not a failure)."""
    return {seed: r.passed for seed, r in results.items() if r.status != "error"}


def _verdict(
    outcome: PairedOutcome | None, adjusted_p: float | None, seeds: Sequence[SeedComparison]
) -> str | None:
    if outcome is None or adjusted_p is None:
        return None
    if outcome.n == 0 and any(s.status == "error" for s in seeds):
        if not any(s.judged for s in seeds):
            return "errored: no seed ran to the end"
        return "no seed pairs to compare"
    return verdict(outcome, adjusted_p)


def commit_state(gates: Sequence[GateResult]) -> CommitState:
    """failure when a judgement fails; error when only artifacts are missing or a gate had no
    data to judge (the judgement is incomplete rather than negative); success otherwise."""
    failed = [g for g in gates if not g.passed]
    if any(g.name != "artifacts" and not g.unjudged for g in failed):
        return "failure"
    return "error" if failed else "success"


# --- the report ------------------------------------------------------------------------------


def recorded_config(probe: ResolvedProbe, results: dict[int, SeedResult]) -> dict[str, Any]:
    """The knobs a probe's seeds recorded (its lowest seed's: seeds that disagree with the round
    file are config-mismatch problems), else the round file's."""
    if results:
        return results[min(results)].config
    return probe.knobs.model_dump(mode="json")


def mixed_settings(results: dict[int, SeedResult]) -> bool:
    recorded = [(r.trainer, r.config, r.options) for r in results.values()]
    return any(other != recorded[0] for other in recorded[1:])


def knob_differences(config: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Knobs whose value differs from the baseline's (clip compared by effective policy)."""
    return {k: v for k, v in config.items() if k not in CLIP_ARGUMENTS and baseline.get(k) != v}


def build_report(round_: ResolvedRound, gathered: Gathered) -> RoundReport:
    """Compare every probe of ``round_`` with its baseline over the gathered artifacts."""
    settings = round_.gates
    baseline_id = round_.baseline.id
    baseline_results = gathered.results.get(baseline_id, {})
    baseline_config = recorded_config(round_.baseline, baseline_results)
    baseline_traces = {seed: loss_trace(r.rows) for seed, r in baseline_results.items()}
    floor, allowance = round_allowance(settings.trace_tolerance, baseline_results, baseline_traces)
    compared = [p for p in round_.probes if p != baseline_id]
    # Holm over m probes, worst case: the detectable gap is stated at alpha / m.
    family_alpha = ALPHA / max(len(compared), 1)
    baseline_flags = _judged_flags(baseline_results)
    outcomes = {
        probe_id: paired_outcome(baseline_flags, _judged_flags(gathered.results.get(probe_id, {})))
        for probe_id in compared
    }
    adjusted = holm_adjust({p: o.mcnemar_p for p, o in outcomes.items()})

    all_gates: list[GateResult] = []
    probe_reports: list[ProbeReport] = []
    for probe_id in [baseline_id, *compared]:
        probe = round_.probes[probe_id]
        results = gathered.results.get(probe_id, {})
        is_baseline = probe_id == baseline_id
        config = recorded_config(probe, results)
        seeds = [
            compare_seed(
                seed,
                results.get(seed),
                baseline_results.get(seed),
                allowance,
                gathered.files.get((probe_id, seed)),
                is_baseline,
                baseline_traces.get(seed),
            )
            for seed in round_.seeds
        ]
        outcome, holm_p = outcomes.get(probe_id), adjusted.get(probe_id)
        differs = outcome is not None and outcome.n > 0 and adjusted[probe_id] < ALPHA
        detectability = None
        if outcome is not None:
            detectability = describe_detectability(outcome.n, outcome.baseline_rate, family_alpha)
        stated = [
            smoke_gate(probe_id, seeds, settings.cf_loss_max),
            errors_gate(probe_id, seeds, settings.max_error_seeds),
            None if is_baseline else parity_gate(probe_id, probe.expect, seeds),
            probe_artifacts_gate(probe_id, seeds, settings.require_all_seeds),
        ]
        if settings.outcome and outcome is not None:  # (None: the baseline itself)
            stated.append(outcome_gate(probe_id, outcome, holm_p, differs))
        gates = [g for g in stated if g is not None]
        all_gates += gates
        run = [s for s in seeds if s.judged]
        probe_reports.append(
            ProbeReport(
                id=probe_id,
                trainer=results[min(results)].trainer if results else probe.trainer.name,
                description=probe.probe.description,
                expect=probe.expect,
                is_baseline=is_baseline,
                knobs=knob_differences(config, baseline_config),
                config=config,
                options=results[min(results)].options if results else probe.probe.options,
                mixed_settings=mixed_settings(results),
                unhonoured=results[min(results)].unhonoured if results else {},
                seeds=seeds,
                pass_ci=wilson_interval(sum(1 for s in run if s.passed), len(run)),
                outcome=outcome,
                holm_p=holm_p,
                verdict=_verdict(outcome, holm_p, seeds),
                outcome_differs=differs,
                seed_insensitive=seed_insensitive(seeds),
                detectability=detectability,
                state=commit_state(gates),
            )
        )

    planned = len(round_.probes) * len(round_.seeds)
    all_gates.append(round_artifacts_gate(gathered.problems, planned, settings.require_all_seeds))
    baseline_run = [r.passed for r in baseline_results.values()]
    # With no baseline seed at all, 0.5 leaves the most room either way.
    baseline_rate = sum(baseline_run) / len(baseline_run) if baseline_run else 0.5
    return RoundReport(
        round_id=round_.id,
        hypothesis=round_.round.hypothesis,
        baseline=baseline_id,
        seeds=list(round_.seeds),
        gate_settings=settings.model_dump(mode="json"),
        probes=probe_reports,
        gates=all_gates,
        problems=gathered.problems,
        detectability=describe_detectability(len(round_.seeds), baseline_rate, family_alpha),
        files_seen=gathered.files_seen,
        passed=all(g.passed for g in all_gates),
        noise_floor=floor,
        allowance=allowance.describe(),
    )


def round_allowance(
    tolerance: float | None, baseline: dict[int, SeedResult], losses: dict[int, list[float]]
) -> tuple[NoiseFloor | None, Allowance]:
    """An explicit tolerance when the round sets one; else the noise floor its baseline's seeds
    measured (``losses``: their loss traces); bitwise when they measured none (results from
    before the floor existed)."""
    floor = None
    if tolerance is None:
        samples = {seed: r.noise for seed, r in baseline.items() if r.noise is not None}
        floor = noise_floor(samples, losses)
    return floor, Allowance.for_round(tolerance, floor)
