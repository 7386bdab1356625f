"""The round report as one self-contained HTML page: inline CSS, inline SVG, no script.

What a verdict rests on comes first: pass rates with their Wilson intervals, and per probe the
step-by-step loss difference to the baseline on a symmetric log scale with the round's noise
floor shaded (inside the band is "equivalent") and its width written. Then loss-curve plots,
baseline against probe, one small plot per seed with the step its losses first part (and its
first structural difference) marked. A round of hundreds of seeds shows the seeds that diverge
first and says how many were left out; the per-seed table below each probe always lists every
seed. Every text taken from the report (probe IDs, generations, errors, hypothesis) goes
through :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

from ..stats import percent
from ..traces import Allowance, first_divergence, format_size
from .compare import ProbeReport, RoundReport, SeedComparison
from .markdown import (
    DASH,
    SUMMARY_HEADERS,
    cross_device_text,
    device_names,
    family_note,
    pass_rate_text,
    seed_structure_text,
    seed_trace_text,
    shape_text,
    size_text,
    smoke_gate_text,
    summary_cells,
    trace_text,
    yes_no,
)

Scale = Callable[[float], float]

MAX_PLOTS_PER_PROBE = 30
WIDTH, HEIGHT = 240, 150
# LEFT holds the y axis's title (written upward at Y_TITLE_X) and its tick labels.
LEFT, RIGHT, TOP, BOTTOM = 54, 8, 10, 22
Y_TITLE_X = 10
# The difference plot and the pass-rate chart are wider than the per-seed plots.
WIDE, TALL = 520, 200
# Room left of the difference plot for its y title and signed tick labels.
AXIS_W = 58
# A generous width of one character of the plots' 9px labels, to keep labels clear of each
# other and of the axis labels.
CHAR_W = 5.5

STYLE = """
body{font:14px/1.45 -apple-system,system-ui,sans-serif;margin:2em;color:#1b1f24;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
blockquote{color:#57606a;border-left:4px solid #d0d7de;margin:0;padding:0 1em}
.pass{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}
.plots{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0 0 8px;border:1px solid #d0d7de;padding:4px;width:fit-content}
figcaption{font-size:11px;max-width:240px;color:#57606a}
svg text{font-size:9px;fill:#57606a}
.axis{stroke:#8c959f;stroke-width:1}
.base{fill:none;stroke:#0969da;stroke-width:1.5}
.probe{fill:none;stroke:#fb8500;stroke-width:1.2;stroke-dasharray:3 2}
.diverge{stroke:#cf222e;stroke-width:1;stroke-dasharray:4 2}
.structural{stroke:#8250df;stroke-width:1;stroke-dasharray:1 2}
svg text.mark-diverge{fill:#cf222e}svg text.mark-structural{fill:#8250df}
.nonfinite{fill:#cf222e}
.floor{fill:#2da44e;fill-opacity:.15;stroke:none}
.zero{stroke:#8c959f;stroke-width:.8}
.delta{fill:none;stroke:#fb8500;stroke-width:1;stroke-opacity:.8}
.delta.diverges{stroke:#cf222e}
.bar{fill:#0969da;fill-opacity:.75}
.ci{stroke:#1b1f24;stroke-width:1.2}
.legend span{margin-right:1.5em}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# --- plots -------------------------------------------------------------------------------------


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>'
    )


def _y_scale(values: list[float]) -> tuple[Scale, float, float, bool]:
    """(loss → y pixel, lowest loss, highest loss, log scale?): log10 when every loss is
    positive (losses fall by orders of magnitude while memorising), linear otherwise."""
    use_log = bool(values) and min(values) > 0
    transformed = [math.log10(v) for v in values] if use_log else values
    low, high = (min(transformed), max(transformed)) if transformed else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    span = high - low

    def y(value: float) -> float:
        t = math.log10(value) if use_log else value
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (t - low) / span)

    bottom_value = 10**low if use_log else low
    top_value = 10**high if use_log else high
    return y, bottom_value, top_value, use_log


def _polylines(losses: Sequence[float], x: Scale, y: Scale, css: str) -> list[str]:
    """One polyline per run of finite losses; non-finite steps break the line."""
    out, points = [], []
    for index, loss in enumerate(losses):
        if math.isfinite(loss):
            points.append(f"{x(index + 1):.1f},{y(loss):.1f}")
        elif points:
            out.append(points)
            points = []
    if points:
        out.append(points)
    return [f'<polyline class="{css}" points="{" ".join(p)}"/>' for p in out]


def _nonfinite_marks(losses: Sequence[float], x: Scale) -> list[str]:
    return [
        f'<text class="nonfinite" x="{x(i + 1):.1f}" y="{TOP + 8}">×</text>'
        for i, loss in enumerate(losses)
        if not math.isfinite(loss)
    ]


def _marker(step: int | None, x: Scale, css: str) -> list[str]:
    if step is None:
        return []
    at = f"{x(step):.1f}"
    return [f'<line class="{css}" x1="{at}" x2="{at}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>']


def step_labels(
    markers: Sequence[tuple[int | None, str]], x: Scale, left: float, right: float
) -> list[str]:
    """One label per marked step ((step, marker class) pairs; the first of a step names it),
    above the plot in its marker's colour: centred on its marker where it fits, else moved
    inside ``left``…``right`` (a label at step 1 centred on the y axis would run into the
    axis's top value and read "9.481"), and never over the label before it."""
    css = {step: name for step, name in reversed(markers) if step is not None}
    steps = sorted(css)
    texts = [str(step) for step in steps]
    widths = [len(text) * CHAR_W for text in texts]
    # Left to right, each label clear of the left edge and the label before; then right to
    # left, each clear of the right edge and the label after (two markers at the last steps).
    starts, end = [], -math.inf
    for step, width in zip(steps, widths, strict=True):
        starts.append(max(x(step) - width / 2, left, end + CHAR_W))
        end = starts[-1] + width
    limit = right
    for i in reversed(range(len(starts))):
        starts[i] = min(starts[i], limit - widths[i])
        limit = starts[i] - CHAR_W
    return [
        f'<text class="mark-{css[step]}" x="{start:.1f}" y="{TOP - 1}">{step}</text>'
        for start, step in zip(starts, steps, strict=True)
    ]


def _step_scale(left: int, right: int, steps: int) -> Scale:
    """Step 1 at ``left``, step ``steps`` at ``right``."""
    return lambda step: left + (right - left) * ((step - 1) / max(steps - 1, 1))


def _axis_titles(left: int, right: int, height: int, steps: int, y_title: str) -> list[str]:
    """Below the plot the first and last step and "step"; the y axis's own title written upward
    at the left edge, left of its tick labels."""
    middle = (TOP + height - BOTTOM) / 2
    return [
        f'<text x="{left}" y="{height - 8}">1</text>',
        f'<text x="{right}" y="{height - 8}" text-anchor="end">{steps}</text>',
        f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">step</text>',
        f'<text transform="rotate(-90)" x="{-middle:.1f}" y="{Y_TITLE_X}" '
        f'text-anchor="middle">{esc(y_title)}</text>',
    ]


def loss_departure(
    probe: Sequence[float], baseline: Sequence[float], allowance: Allowance
) -> int | None:
    """The step where the losses themselves first part beyond ``allowance``, whichever signal
    the verdict names first (a wider batch at step 1 may leave every loss bitwise equal): what
    the "first loss divergence" marker marks. None when the losses agree on every shared step."""
    parted = first_divergence(probe, baseline, allowance)
    return parted.step if parted is not None and parted.signal == "loss" else None


def loss_plot(
    title: str,
    baseline: Sequence[float],
    probe: Sequence[float] | None,
    loss_step: int | None = None,
    structural_step: int | None = None,
) -> str:
    """One small SVG: x = step, y = loss (log scale when possible); ``loss_step`` is where the
    losses part (:func:`loss_departure`), ``structural_step`` the first structural difference."""
    series = [baseline] + ([probe] if probe is not None else [])
    steps = max((len(s) for s in series), default=0)
    if steps == 0:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img"><title>{esc(title)}</title>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text></svg>'
        )
    x = _step_scale(LEFT, WIDTH - RIGHT, steps)
    y, low, high, use_log = _y_scale([v for s in series for v in s if math.isfinite(v)])
    parts = [
        _svg_open(WIDTH, HEIGHT, title),
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}"/>',
        f'<text x="{LEFT - 3}" y="{TOP + 4}" text-anchor="end">{esc(format_size(high))}</text>',
        f'<text x="{LEFT - 3}" y="{HEIGHT - BOTTOM}" text-anchor="end">'
        f"{esc(format_size(low))}</text>",
        *_axis_titles(
            LEFT, WIDTH - RIGHT, HEIGHT, steps, "loss (log scale)" if use_log else "loss"
        ),
        *_marker(structural_step, x, "structural"),
        *_marker(loss_step, x, "diverge"),
        *step_labels(
            ((structural_step, "structural"), (loss_step, "diverge")), x, LEFT, WIDTH - RIGHT
        ),
        *_polylines(baseline, x, y, "base"),
    ]
    if probe is not None:
        parts += _polylines(probe, x, y, "probe")
        parts += _nonfinite_marks(probe, x)
    parts += _nonfinite_marks(baseline, x)
    parts.append("</svg>")
    return "".join(parts)


def symlog(value: float, linear_below: float) -> float:
    """Symmetric log: linear within ±``linear_below``, logarithmic beyond, sign kept — so a
    1e-7 rounding difference and a 0.5 jump both show."""
    return math.copysign(math.log10(1 + abs(value) / linear_below), value)


def difference_plot(probe: ProbeReport, baseline: ProbeReport, allowance: Allowance) -> str:
    """Per step, probe loss − baseline loss for every seed (symmetric log scale), with the band
    a verdict allows (``allowance``: the noise floor, or an explicit tolerance) shaded and its
    width at the last step written at its edge."""
    baseline_losses = {s.seed: s.losses for s in baseline.seeds}
    series = []
    for s in _plot_order([s for s in probe.seeds if s.present])[:MAX_PLOTS_PER_PROBE]:
        reference = baseline_losses.get(s.seed) or []
        deltas = [a - b for a, b in zip(s.losses, reference, strict=False)]
        series.append((s, deltas))
    steps = max((len(d) for _, d in series), default=0)
    title = f"{probe.id} − {baseline.id}: loss difference per step"
    if steps == 0:
        return _svg_open(WIDE, TALL, title) + "<text x='20' y='40'>no data</text></svg>"
    # The |Δloss| a verdict allows at each step.
    band = list(allowance.limits(steps))
    finite = [abs(d) for _, deltas in series for d in deltas if math.isfinite(d) and d]
    linear_below = min([b for b in band if b > 0] + finite + [1e-7])
    top = max([symlog(v, linear_below) for v in finite + band] + [1.0])
    x = _step_scale(AXIS_W, WIDE - RIGHT, steps)
    plot_h = TALL - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h * (0.5 - symlog(value, linear_below) / (2 * top))

    upper = " ".join(f"{x(k + 1):.1f},{y(b):.1f}" for k, b in enumerate(band))
    lower = " ".join(f"{x(k + 1):.1f},{y(-b):.1f}" for k, b in reversed(list(enumerate(band))))
    largest = 10**top * linear_below - linear_below  # the value at the top edge
    parts = [
        _svg_open(WIDE, TALL, title),
        f'<polygon class="floor" points="{upper} {lower}"/>',
        f'<line class="zero" x1="{AXIS_W}" x2="{WIDE - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>',
        f'<line class="axis" x1="{AXIS_W}" x2="{AXIS_W}" y1="{TOP}" y2="{TALL - BOTTOM}"/>',
        f'<text x="{AXIS_W - 3}" y="{TOP + 4}" text-anchor="end">+{largest:.2g}</text>',
        f'<text x="{AXIS_W - 3}" y="{y(0) + 3:.1f}" text-anchor="end">0</text>',
        f'<text x="{AXIS_W - 3}" y="{TALL - BOTTOM}" text-anchor="end">−{largest:.2g}</text>',
        *_axis_titles(AXIS_W, WIDE - RIGHT, TALL, steps, "Δloss (symmetric log scale)"),
    ]
    if band[-1] > 0:
        # The band widens with the steps (float noise does not heal): its last width is its
        # widest, written just above its upper edge at the right.
        parts.append(
            f'<text x="{WIDE - RIGHT}" y="{y(band[-1]) - 3:.1f}" text-anchor="end">'
            f"±{allowance.format_loss(band[-1])} allowed</text>"
        )
    for s, deltas in series:
        css = "delta diverges" if s.trace == "diverges" else "delta"
        parts += _polylines(deltas, x, y, css)
    parts.append("</svg>")
    return "".join(parts)


def pass_rate_chart(report: RoundReport) -> str:
    """Each probe's pass rate as a bar with its 95% Wilson interval as a whisker."""
    probes = [p for p in report.probes if p.seeds_run()]
    row, label_w, count_w = 22, 150, 48
    height = TOP + BOTTOM + row * max(len(probes), 1)
    plot_w = WIDE - label_w - count_w

    def x(rate: float) -> float:
        return label_w + plot_w * rate

    parts = [_svg_open(WIDE, height, "pass rate per probe with 95% Wilson intervals")]
    for i, p in enumerate(probes):
        top = TOP + i * row
        middle = top + row / 2
        rate = p.passes() / p.seeds_run()
        low, high = p.pass_ci
        parts += [
            f'<text x="{label_w - 6}" y="{middle + 3:.1f}" text-anchor="end">{esc(p.id)}</text>',
            f'<rect class="bar" x="{label_w}" y="{top + 4}" width="{x(rate) - label_w:.1f}" '
            f'height="{row - 8}"/>',
            f'<line class="ci" x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{middle:.1f}" '
            f'y2="{middle:.1f}"/>',
            f'<text x="{x(1) + 6:.1f}" y="{middle + 3:.1f}">{p.passes()}/{p.seeds_run()}</text>',
        ]
    axis_y = height - BOTTOM
    parts += [
        f'<line class="axis" x1="{label_w}" x2="{x(1):.1f}" y1="{axis_y}" y2="{axis_y}"/>',
        *(
            f'<text x="{x(t):.1f}" y="{axis_y + 12}" text-anchor="middle">{percent(t)}</text>'
            for t in (0, 0.25, 0.5, 0.75, 1)
        ),
        "</svg>",
    ]
    return "".join(parts)


def _plot_order(seeds: Sequence[SeedComparison]) -> list[SeedComparison]:
    """Seeds worth looking at first: diverging (earliest first), then structural, then the
    rest in round order (the sort is stable)."""
    return sorted(
        seeds,
        key=lambda s: (s.trace != "diverges", s.divergence_step or 0, s.structural_step is None),
    )


def probe_plots(probe: ProbeReport, baseline: ProbeReport, allowance: Allowance) -> list[str]:
    with_data = [s for s in probe.seeds if s.present]
    if len(with_data) > MAX_PLOTS_PER_PROBE:
        chosen = _plot_order(with_data)[:MAX_PLOTS_PER_PROBE]
        note = (
            f"<p>Showing {MAX_PLOTS_PER_PROBE} of {len(with_data)} seeds, diverging seeds "
            "first; the table below lists every seed.</p>"
        )
    else:
        chosen, note = with_data, ""
    baseline_losses = {s.seed: s.losses for s in baseline.seeds}
    figures = []
    for s in chosen:
        if probe.is_baseline:
            plot = loss_plot(f"{probe.id} seed {s.seed}", s.losses, None)
            caption = f"seed {s.seed}: {s.status}"
        else:
            reference = baseline_losses.get(s.seed, [])
            # A trace that could not be compared (a failed run's partial one) marks nothing.
            compared = s.trace not in (None, "unavailable")
            plot = loss_plot(
                f"{probe.id} vs {baseline.id}, seed {s.seed}",
                reference,
                s.losses,
                loss_departure(s.losses, reference, allowance) if compared else None,
                s.structural_step,
            )
            caption = f"seed {s.seed}: {seed_trace_text(s)}"
            if s.structural and s.divergence_signal != "structure":  # else the trace says it
                caption += f"; {s.structural}"
        figures.append(f"<figure>{plot}<figcaption>{esc(caption)}</figcaption></figure>")
    if not figures:
        figures.append(f"<figure>{loss_plot(f'{probe.id}: no seeds', [], None)}</figure>")
    return [note, '<div class="plots">', *figures, "</div>"]


# --- tables and page ---------------------------------------------------------------------------

# Characters that need escaping in HTML text; most rows (numbers, verdicts) have none, and
# skipping the escape for them matters at tens of thousands of cells.
_SPECIAL = frozenset("&<>\"'")


def _row(cells: Sequence[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    between = f"</{tag}><{tag}>"
    # The cells joined by a character escaping leaves alone, so a row needs one escape at most
    # (most rows need none); per cell in the unlikely case that a cell holds it.
    text = "\0".join(cells)
    if text.count("\0") != len(cells) - 1:
        text = between.join(map(esc, cells))
    else:
        text = (esc(text) if _SPECIAL.intersection(text) else text).replace("\0", between)
    return f"<tr><{tag}>{text}</{tag}></tr>"


def summary_table(report: RoundReport) -> list[str]:
    rows = (_row(summary_cells(p)) for p in report.probes)
    return ["<table>", _row(SUMMARY_HEADERS, header=True), *rows, "</table>"]


def seed_table(probe: ProbeReport, allowance: Allowance) -> list[str]:
    headers = ("seed", "status", "pass", "baseline pass", "trace", "structure", "max |Δloss|")
    headers += ("cf_loss", "generation", "device", "file", "error")
    rows = [
        _row(
            (
                str(s.seed),
                s.status,
                yes_no(s.passed),
                yes_no(s.baseline_passed),
                seed_trace_text(s),
                seed_structure_text(s, allowance),
                size_text(s.max_abs_dloss),
                size_text(s.cf_loss),
                DASH if s.generation is None else s.generation,
                s.device or DASH,
                s.file or DASH,
                s.error or "",
            )
        )
        for s in probe.seeds
    ]
    return [
        f"<details><summary>Per-seed detail ({len(rows)} seeds)</summary><table>",
        _row(headers, header=True),
        *rows,
        "</table></details>",
    ]


def device_paragraphs(report: RoundReport) -> list[str]:
    """The devices the seeds trained on and the comparisons that crossed them, as the
    Markdown report says them."""
    devices = device_names(report)
    if not devices:
        return []
    parts = [f"<p><b>Devices:</b> {esc(', '.join(devices))}</p>"]
    if (crossed := cross_device_text(report)) is not None:
        parts.append(f'<p class="warn">⚠️ {esc(crossed)}</p>')
    return parts


def probe_line(probe: ProbeReport) -> str:
    """A probe section's first line. The baseline's says it is the baseline: it is not
    compared with itself, so no expectation or trace verdict applies to it."""
    role = "the baseline every probe is compared with" if probe.is_baseline else None
    parts = [
        probe.description,
        f"trainer {probe.trainer}",
        role or f"expect {probe.expect}",
        f"{pass_rate_text(probe)} pass",
        None if probe.is_baseline else trace_text(probe),
    ]
    return " · ".join(part for part in parts if part)


def render_html(report: RoundReport) -> str:
    baseline = report.probe(report.baseline)
    state = (
        '<span class="pass">passed</span>' if report.passed else '<span class="fail">failed</span>'
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mlx-parity round {esc(report.round_id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>mlx-parity · round {esc(report.round_id)} · {state}</h1>",
        f"<blockquote>{esc(report.hypothesis)}</blockquote>",
        f"<p>Baseline <b>{esc(report.baseline)}</b> · {esc(shape_text(report))} · "
        f"{esc(smoke_gate_text(report))} · {report.files_seen} JSON files read</p>",
        *device_paragraphs(report),
        *summary_table(report),
        f"<figure>{pass_rate_chart(report)}<figcaption>pass rate per probe, with its 95% "
        "Wilson interval</figcaption></figure>",
        f"<p>Traces compared {esc(report.allowance)}"
        + (f"; noise floor {esc(report.noise_floor.describe())}" if report.noise_floor else "")
        + ".</p>",
        "<h2>Gates</h2><ul>",
        *(
            f'<li class="{"pass" if g.passed else "fail"}">{"✅" if g.passed else "❌"} '
            f"<b>{esc(g.title)}</b>: {esc(g.detail)}</li>"
            for g in report.gates_failing_first()
        ),
        "</ul>",
    ]
    if report.problems:
        parts.append(f"<h2>Problems ({len(report.problems)})</h2><ul>")
        parts += [
            f'<li class="{"fail" if p.blocking else "warn"}">'
            f"{esc(f'{p.kind} · {p.subject}: {p.detail}')}</li>"
            for p in sorted(report.problems, key=lambda p: not p.blocking)
        ]
        parts.append("</ul>")
    parts += [
        f"<p><b>Detectability:</b> {esc(report.detectability)} ({esc(family_note(report))}).</p>",
        '<p class="legend"><span style="color:#0969da">━ baseline</span>'
        '<span style="color:#fb8500">╍ probe</span>'
        '<span style="color:#cf222e">┆ first loss divergence</span>'
        '<span style="color:#8250df">┆ first structural difference</span>'
        '<span style="color:#cf222e">× non-finite loss</span></p>',
    ]
    allowance = report.trace_allowance()
    for probe in report.probes:
        role = " (baseline)" if probe.is_baseline else ""
        parts += [
            f'<section id="probe-{esc(probe.id)}">',
            f"<h2>{esc(probe.id)}{role}</h2>",
            f"<p>{esc(probe_line(probe))}</p>",
        ]
        if not probe.is_baseline:
            plot = difference_plot(probe, baseline, allowance)
            parts.append(
                f"<figure>{plot}<figcaption>loss difference to the baseline per step, every "
                "seed; the shaded band is what the verdict allows</figcaption></figure>"
            )
        parts += [*probe_plots(probe, baseline, allowance), *seed_table(probe, allowance)]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
