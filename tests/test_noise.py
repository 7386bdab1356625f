"""The noise floor: drift measured from equivalent variants, the allowance built from it, and
the verdict tiers (identical, equivalent, diverges) collect gives with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import collect, full_round, make_result, make_round, trace
from mlx_parity.collect.markdown import render_markdown
from mlx_parity.noise import MARGIN, NoiseFloor, NoiseSample, noise_floor, sample_drift
from mlx_parity.traces import Allowance

NAN = math.nan


def f32_ulp(x: float) -> float:
    return float(np.spacing(np.float32(x)))


def test_sample_drift_is_the_largest_drift_of_any_variant_per_step() -> None:
    reference = [(2.0, None), (1.5, 3.0), (1.0, 2.0)]
    variants = {
        "a": [(2.0, None), (1.5 + 1e-6, 3.0 * (1 + 2e-7)), (1.0 - 4e-6, 2.0)],
        "b": [(2.0 + 2e-6, None), (1.5, 3.0), (NAN, 2.0)],
    }
    sample = sample_drift(reference, variants)
    assert sample.variants == ["a", "b"]
    assert sample.loss[0] == pytest.approx(2e-6)
    assert sample.loss[1] == pytest.approx(1e-6)
    assert math.isnan(sample.loss[2])  # a non-finite step is not a measurement
    assert sample.grad_norm[0] is None
    assert sample.grad_norm[1] == pytest.approx(2e-7)
    assert sample.grad_norm[2] == 0.0


def test_a_variant_that_stopped_early_measures_nothing_after() -> None:
    sample = sample_drift([(1.0, None), (1.0, None)], {"a": [(1.0, None)]})
    assert sample.loss[0] == 0.0 and math.isnan(sample.loss[1])


def test_the_floor_is_the_running_max_times_the_margin_at_least_a_few_ulps() -> None:
    samples = {
        1: NoiseSample(variants=["a"], loss=[0.0, 3e-6, 1e-6, NAN], grad_norm=[None, 1e-7] * 2),
        7: NoiseSample(variants=["b"], loss=[1e-7, 2e-6, 5e-6], grad_norm=[None, 3e-7, None]),
    }
    losses = {1: [4.0, 3.0, 2.0, 1.0], 7: [4.0, 3.0, 2.0]}
    floor = noise_floor(samples, losses)
    assert floor is not None
    assert floor.seeds == [1, 7] and floor.variants == ["a", "b"]
    # Step 1: the drift seen (1e-7) is below one float32 ulp of a loss of 4 (4.8e-7).
    assert floor.loss[0] == pytest.approx(MARGIN * f32_ulp(4.0))
    assert floor.loss[1] == pytest.approx(MARGIN * 3e-6)
    assert floor.loss[2] == pytest.approx(MARGIN * 5e-6)  # the larger of the two seeds
    assert floor.loss[3] == pytest.approx(MARGIN * 5e-6)  # noise does not heal
    assert floor.grad_norm == pytest.approx(MARGIN * 3e-7)
    # Step 4: seed 1's variant went non-finite and seed 7 has no step 4; the report says so.
    assert floor.unmeasured == [4]
    assert floor.describe().endswith(
        "; not measured at step 4 (no variant's loss was finite there)"
    )


def test_no_sample_no_floor() -> None:
    assert noise_floor({}, {1: [1.0]}) is None


def test_a_floor_says_what_it_was_measured_from_and_one_value_once() -> None:
    widening = NoiseFloor(
        seeds=[1, 7], variants=["reassociated", "reordered"], loss=[7.6e-6, 9.5e-6], grad_norm=2e-6
    )
    assert widening.describe() == (
        "measured from the reassociated and reordered variants on seeds 1, 7: |Δloss| ≤ 7.6e-06 "
        "at step 1 to 9.5e-06 at step 2, gradient norm within 2e-06 (×4)"
    )
    assert Allowance.from_floor(widening).describe() == (
        "within the noise floor (|Δloss| ≤ 7.6e-06…9.5e-06)"
    )
    # As wide at the last step as at the first (to the digits shown): one value, not a range.
    flat = NoiseFloor(seeds=[42], variants=["reordered"], loss=[7.6e-6, 7.61e-6], grad_norm=2e-6)
    assert flat.describe() == (
        "measured from the reordered variant on seed 42: |Δloss| ≤ 7.6e-06 at every step, "
        "gradient norm within 2e-06 (×4)"
    )
    assert Allowance.from_floor(flat).describe() == "within the noise floor (|Δloss| ≤ 7.6e-06)"
    gaps = flat.model_copy(update={"unmeasured": [3, 4, 5, 9]})
    assert gaps.describe().endswith(
        "(×4); not measured at steps 3–5, 9 (no variant's loss was finite there)"
    )


# --- in collect ------------------------------------------------------------------------------


def calibrated(seed: int, drift: float = 1e-6):
    """A baseline seed result carrying a noise sample of ``drift`` at every step."""
    result = make_result("reference", seed)
    sample = NoiseSample(variants=["reordered"], loss=[drift] * 30, grad_norm=[2e-7] * 30)
    return result.model_copy(update={"noise": sample})


def nudged(probe: str, seed: int, by: float, at: int = 5):
    """``probe``'s result with the baseline's trace moved by ``by`` from step ``at`` on."""
    losses = [x + (by if i + 1 >= at else 0.0) for i, x in enumerate(trace(seed))]
    return make_result(probe, seed, losses=losses)


def floor_round(directory):
    """A calibrated baseline; "reordered" 2e-6 off from step 5 (inside), "core" 1e-4 (outside)."""
    round_ = make_round(probes=("reference", "reordered", "core"), seeds=(1, 7))
    overrides = {("reference", s): calibrated(s) for s in (1, 7)}
    overrides |= {("reordered", s): nudged("reordered", s, 2e-6) for s in (1, 7)}
    overrides |= {("core", s): nudged("core", s, 1e-4) for s in (1, 7)}
    full_round(directory, round_, overrides)
    return collect(directory, round_)


def test_a_trace_inside_the_floor_is_equivalent_and_outside_diverges(tmp_path) -> None:
    report = floor_round(tmp_path)
    assert report.noise_floor is not None and report.noise_floor.seeds == [1, 7]
    reordered = report.probe("reordered")
    assert reordered.trace_counts() == {"equivalent": 2}
    assert reordered.seeds[0].trace_detail.startswith("equivalent over 30 steps")
    assert report.probe("core").trace_counts() == {"diverges": 2}
    assert report.probe("core").seeds[0].divergence_step == 5
    assert report.passed  # "reordered" expects equivalent; core claims nothing
    markdown = render_markdown(report)
    assert "**Noise floor:** measured from the reordered variant on seeds 1, 7" in markdown
    assert "traces compared within the noise floor" in markdown


def test_an_explicit_tolerance_replaces_the_floor(tmp_path) -> None:
    round_ = make_round(probes=("reference", "reordered"), seeds=(1,), trace_tolerance=0.0)
    overrides = {("reference", 1): calibrated(1), ("reordered", 1): nudged("reordered", 1, 2e-6)}
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    assert report.noise_floor is None and report.allowance == "bit for bit"
    assert report.probe("reordered").trace_counts() == {"diverges": 1}
    assert not report.passed


def test_without_a_recorded_floor_only_bitwise_agrees(tmp_path) -> None:
    round_ = make_round(probes=("reference", "reordered"), seeds=(1,))
    full_round(tmp_path, round_, {("reordered", 1): nudged("reordered", 1, 2e-6)})
    report = collect(tmp_path, round_)
    assert report.noise_floor is None
    assert report.probe("reordered").trace_counts() == {"diverges": 1}
    assert "none recorded by the baseline's seeds" in render_markdown(report)


def test_a_plugin_probe_is_held_to_parity_by_default(tmp_path) -> None:
    round_ = make_round(probes=("reference", "candidate"), seeds=(1, 7))
    assert round_.probe("candidate").expect == "equivalent"
    overrides = {("reference", s): calibrated(s) for s in (1, 7)}
    overrides |= {("candidate", s): nudged("candidate", s, 1e-3) for s in (1, 7)}
    full_round(tmp_path, round_, overrides)
    report = collect(tmp_path, round_)
    gate = next(g for g in report.failed_gates() if g.name == "parity")
    assert gate.probe == "candidate" and gate.detail == "expects equivalent: diverges 2/2"
    assert not report.passed


# --- in the HTML report ----------------------------------------------------------------------


def test_symlog_is_linear_near_zero_and_logarithmic_beyond() -> None:
    from mlx_parity.collect.html import symlog

    assert symlog(0.0, 1e-7) == 0.0
    assert symlog(1e-7, 1e-7) == pytest.approx(math.log10(2))
    assert symlog(-9e-7, 1e-7) == pytest.approx(-1.0)
    assert symlog(0.1, 1e-7) == pytest.approx(-symlog(-0.1, 1e-7))


def test_the_html_report_shows_the_floor_band_and_the_pass_rate_intervals(tmp_path) -> None:
    from mlx_parity.collect.html import render_html

    page = render_html(floor_round(tmp_path))
    # One difference plot per compared probe, each with the band and one line per seed.
    assert page.count('<polygon class="floor"') == 2
    core = page[page.index('id="probe-core"') :]
    plot = core[: core.index("</svg>")]
    assert plot.count('class="delta diverges"') == 2
    band = plot[plot.index('class="floor" points="') :].split('"')[3].split()
    assert len(band) == 2 * 30  # upper edge forward, lower edge back
    # Pass rates: a bar and a Wilson whisker per probe.
    assert page.count('class="ci"') == 3 and page.count('class="bar"') == 3
    assert "Traces compared within the noise floor" in page
