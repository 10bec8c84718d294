"""FCR-D ramp test rules (TR25 §3.1.2) on traces whose answer follows from the formulas.

The power trace is piecewise linear with every kink on the 100 ms sample grid, so the
trapezoid energy and the interpolated times are exact. ΔP_ss,theo = D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analytics.rules import TestSequenceError, judge
from analytics.svkcsv import read_csv
from analytics.testing.sequences import fcrd_ramp_frequency
from analytics.timeseries import SamplingRateError, Series
from analytics.verdicts import TestType, Verdict
from contract.enums import Product
from contract.products import direction

D = 1.6  # MW


def fcrd_series(
    product: Product,
    *,
    dt: float = 0.1,
    a75: float = 1.0,
    dead5: float = 0.0,
    rise5: float = 7.5,
    dip: float = 0.0,
    l3: float = 1.0,
    k3: float = 1.0,
    l4: float = 0.0,
    hold1: float = 1.0,
) -> Series:
    """Response in units of D along the TR25 ramp sequence (see module doc)."""
    pts = [(0.0, 0.0), (30.0, 0.0), (33.0, 1.0), (34.4 + hold1, 1.0), (34.6 + hold1, 0.0)]
    pts += [(90.0, 0.0), (90.0 + l3 / k3, l3), (390.0, l3), (392.0, l4), (690.0, l4)]
    if dead5 > 0:
        pts.append((690.0 + dead5, l4))
    pts += [(690.0 + dead5 + rise5, l4 + a75), (729.9, l4 + a75), (730.0, l4 + a75 - dip)]
    pts += [(730.1, l4 + a75), (750.0, l4 + a75), (755.0, 0.0), (1050.0, 0.0)]
    t = np.round(np.arange(0.0, 1050.0 + dt / 2, dt), 9)
    xs, ys = zip(*pts, strict=True)
    sign = direction(product)
    f = fcrd_ramp_frequency(t, product)
    return Series(t=t, power_mw=sign * D * np.interp(t, xs, ys), applied_freq_hz=f)


def by_id(verdicts: list[Verdict], suffix: str) -> Verdict:
    (v,) = [v for v in verdicts if v.rule_id.endswith(suffix)]
    return v


BOTH = [Product.FCR_D_UP, Product.FCR_D_DOWN]


@pytest.mark.parametrize("product", BOTH)
def test_ideal_response_passes_every_rule(product: Product) -> None:
    verdicts = judge(fcrd_series(product), product, TestType.RAMP, dp_ss_theo_mw=D)
    assert {v.rule_version for v in verdicts} == {"TR-2025-03-28", "SVK-LEGACY", "FLOWERHUB-1"}
    assert [v.rule_id for v in verdicts if not v.passed] == []


@pytest.mark.parametrize("product", BOTH)
@pytest.mark.parametrize(("a75", "passed"), [(0.861, True), (0.859, False)])
def test_req2_dp75_borderline(product: Product, a75: float, passed: bool) -> None:
    v = by_id(
        judge(fcrd_series(product, a75=a75), product, TestType.RAMP, dp_ss_theo_mw=D), "REQ2.DP75"
    )
    assert v.measured == pytest.approx(a75 * D, abs=1e-9)
    assert v.threshold == pytest.approx(0.86 * D)
    assert v.passed is passed


@pytest.mark.parametrize("product", BOTH)
@pytest.mark.parametrize(("energy", "passed"), [(3.203, True), (3.197, False)])
def test_req3_energy_borderline(product: Product, energy: float, passed: bool) -> None:
    # zero for 4 s, linear rise over 1 s to A, hold: E = A·(7.5 - 4 - 0.5) = 3·A
    series = fcrd_series(product, dead5=4.0, rise5=1.0, a75=energy / 3.0)
    v = by_id(judge(series, product, TestType.RAMP, dp_ss_theo_mw=D), "REQ3.E75")
    assert v.measured == pytest.approx(energy * D, abs=1e-9)
    assert v.threshold == pytest.approx(3.2 * D)
    assert v.passed is passed


@pytest.mark.parametrize("product", BOTH)
@pytest.mark.parametrize(
    ("ratio", "passed"), [(-0.049, True), (-0.051, False), (0.199, True), (0.201, False)]
)
def test_req1_up_tolerance(product: Product, ratio: float, passed: bool) -> None:
    # P_ss,3 - P_ss,4 = (1 + ratio)·D in the product direction; the down bounds mirror.
    series = fcrd_series(product, l3=1.0 + ratio, l4=0.0)
    v = by_id(judge(series, product, TestType.RAMP, dp_ss_theo_mw=D), "REQ1.SS")
    expected = ratio if product is Product.FCR_D_UP else -ratio
    assert v.measured == pytest.approx(expected, abs=1e-9)
    lo, hi = (-0.05, 0.20) if product is Product.FCR_D_UP else (-0.20, 0.05)
    assert (v.threshold, v.threshold_high) == (lo, hi)
    assert v.passed is (lo <= expected <= hi)
    if product is Product.FCR_D_UP:
        assert v.passed is passed


@pytest.mark.parametrize(
    ("ratio", "passed"), [(-0.199, True), (-0.201, False), (0.049, True), (0.051, False)]
)
def test_req1_down_bounds(ratio: float, passed: bool) -> None:
    # down: (P3 - P4 + D)/D = ratio  <=>  P3 = -(1 - ratio)·D
    series = fcrd_series(Product.FCR_D_DOWN, l3=1.0 - ratio)
    v = by_id(judge(series, Product.FCR_D_DOWN, TestType.RAMP, dp_ss_theo_mw=D), "REQ1.SS")
    assert v.measured == pytest.approx(ratio, abs=1e-9)
    assert v.passed is passed


def test_req1_reduction_factor_scales_the_reference() -> None:
    # P3 = 0.9·D passes with K_red,ss = 0.9 (ratio 0) and fails without it (ratio -0.1).
    series = fcrd_series(Product.FCR_D_UP, l3=0.9)
    plain = by_id(judge(series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D), "REQ1.SS")
    reduced = by_id(
        judge(series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D, k_red_ss=0.9), "REQ1.SS"
    )
    assert (plain.passed, reduced.passed) == (False, True)
    assert reduced.measured == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("product", BOTH)
@pytest.mark.parametrize(("dip", "passed"), [(0.0, True), (0.01, False), (-0.01, True)])
def test_sustain_until_ramp6(product: Product, dip: float, passed: bool) -> None:
    # no tolerance: a 0.2 s dip of 1 % below the 7.5 s value pulls the 10 s mean under it
    v = by_id(
        judge(fcrd_series(product, dip=dip), product, TestType.RAMP, dp_ss_theo_mw=D), "SUSTAIN"
    )
    assert v.threshold == pytest.approx(D)
    assert v.measured == pytest.approx(D - max(dip, 0.0) * D * 0.1 / 10.0, abs=1e-9)
    assert v.passed is passed
    assert "no tolerance" in v.detail


@pytest.mark.parametrize("product", BOTH)
@pytest.mark.parametrize(("hold1", "passed"), [(4.9, True), (5.0, False)])
def test_req4_deactivation_energy(product: Product, hold1: float, passed: bool) -> None:
    # ΔP_nadir = D, floor 0.5·D; excess = 0.5·D·hold1 + 0.025·D (first 0.1 s of the drop)
    series = fcrd_series(product, hold1=hold1)
    v = by_id(judge(series, product, TestType.RAMP, dp_ss_theo_mw=D), "REQ4.DEACT")
    assert v.measured == pytest.approx((0.5 * hold1 + 0.025) * D, abs=1e-9)
    assert v.threshold == pytest.approx(2.5 * D)
    assert v.passed is passed


@pytest.mark.parametrize(
    ("k3", "suffix", "passed"),
    [
        (0.5 / 4.99, "50PCT_5S", True),
        (0.5 / 5.01, "50PCT_5S", False),
        (1.0 / 29.9, "100PCT_30S", True),
        (1.0 / 30.0, "100PCT_30S", True),
        (1.0 / 30.1, "100PCT_30S", False),
    ],
)
def test_legacy_figures_on_ramp3(k3: float, suffix: str, passed: bool) -> None:
    series = fcrd_series(Product.FCR_D_DOWN, k3=k3, l3=1.0)
    verdicts = judge(series, Product.FCR_D_DOWN, TestType.RAMP, "SVK-LEGACY", dp_ss_theo_mw=D)
    assert {v.rule_version for v in verdicts} == {"SVK-LEGACY", "FLOWERHUB-1"}
    v = by_id(verdicts, suffix)
    fraction = 0.5 if suffix == "50PCT_5S" else 1.0
    assert v.measured == pytest.approx(fraction / k3, abs=1e-6)
    assert v.passed is passed


@pytest.mark.parametrize(("l3", "passed"), [(0.999, False), (1.0, True), (1.001, True)])
def test_legacy_100_percent_means_full(l3: float, passed: bool) -> None:
    series = fcrd_series(Product.FCR_D_UP, k3=1.0 / 20.0, l3=l3)
    (v,) = judge(
        series,
        Product.FCR_D_UP,
        TestType.RAMP,
        "SVK-LEGACY",
        only=["FCRD_UP.LEGACY.100PCT_30S"],
        dp_ss_theo_mw=D,
    )
    assert v.passed is passed


def test_wrong_polarity_fails_dynamic_rules_and_polarity() -> None:
    up = fcrd_series(Product.FCR_D_UP)
    mirrored = Series(t=up.t, power_mw=-up.power_mw, applied_freq_hz=up.applied_freq_hz)
    verdicts = judge(mirrored, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D)
    failed = {v.rule_id for v in verdicts if not v.passed}
    assert {"FCRD_UP.REQ2.DP75", "FCRD_UP.REQ3.E75", "FCRD_UP.POLARITY"} <= failed
    assert by_id(verdicts, "POLARITY").measured == pytest.approx(-1.0, abs=0.05)


def test_ramp_starts_from_test_description_replace_detection() -> None:
    series = fcrd_series(Product.FCR_D_UP)
    no_freq = Series(t=series.t, power_mw=series.power_mw)
    starts = (30.0, 34.9, 90.0, 390.0, 690.0, 750.0)
    given = judge(
        no_freq,
        Product.FCR_D_UP,
        TestType.RAMP,
        "TR-2025-03-28",
        only=["FCRD_UP.REQ2.DP75"],
        dp_ss_theo_mw=D,
        ramp_starts_s=starts,
    )
    found = judge(
        series, Product.FCR_D_UP, TestType.RAMP, only=["FCRD_UP.REQ2.DP75"], dp_ss_theo_mw=D
    )
    assert given[0].measured == pytest.approx(found[0].measured, abs=1e-9)


def test_lead_in_before_ramp_1_is_skipped() -> None:
    s = fcrd_series(Product.FCR_D_UP)
    f = s.frequency("t").copy()
    f[s.t < 10.0] = 50.0  # the recording starts at 50.0 Hz and steps to 49.9 Hz at 10 s
    lead = Series(t=s.t, power_mw=s.power_mw, applied_freq_hz=f)
    plain = judge(s, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D)
    led = judge(lead, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D)
    for a, b in zip(plain, led, strict=True):
        if a.rule_id != "FCRD_UP.POLARITY":
            assert b.measured == pytest.approx(a.measured, abs=1e-9), a.rule_id


def test_wrong_sequence_is_a_typed_error() -> None:
    series = fcrd_series(Product.FCR_D_UP)
    # an FCR-D up trace judged as FCR-D down: ramp 1 goes the wrong way
    with pytest.raises(TestSequenceError, match="ramp 1"):
        judge(series, Product.FCR_D_DOWN, TestType.RAMP, dp_ss_theo_mw=D)


def test_sampling_below_10hz_names_the_requirement() -> None:
    series = fcrd_series(Product.FCR_D_UP, dt=0.5)
    with pytest.raises(SamplingRateError, match=r"FCR-D test logging >= 10 Hz") as err:
        judge(series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D)
    assert err.value.requirement.max_interval_s == 0.1
    # the TSO may allow 1 Hz (TR25 §4.3)
    verdicts = judge(series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=D, allow_1hz=True)
    assert all(v.passed for v in verdicts)


def test_capacity_column_is_the_default_dp_ss() -> None:
    s = fcrd_series(Product.FCR_D_UP, a75=0.861)
    with_cap = Series(
        t=s.t,
        power_mw=s.power_mw,
        applied_freq_hz=s.applied_freq_hz,
        capacity_mw=np.full_like(s.t, D),
    )
    v = by_id(judge(with_cap, Product.FCR_D_UP, TestType.RAMP), "REQ2.DP75")
    assert v.threshold == pytest.approx(0.86 * D)


# ---------------------------------------------------------------- hand-built SvK CSV files
def hand_csv(tmp_path: Path, name: str, series: Series, cap_header: str) -> Path:
    """Write an SvK CSV by hand (not with the project's writer): CRLF, 3+ decimals."""
    lines = [f"DateTime,InsAcPow,ApplFreqSig,GridFreq,{cap_header}"]
    for t, p, f in zip(series.t, series.power_mw, series.frequency("test"), strict=True):
        ms = round(t * 1000)
        hh, mm, ss = 10 + ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
        stamp = f"20250601T{hh:02d}{mm:02d}{ss:02d}.{ms % 1000:03d}"
        lines.append(f"{stamp},{p:.6f},{f:.4f},{f:.4f},{D:.3f}")
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    return path


@pytest.mark.parametrize(
    ("product", "service", "kwargs", "rule", "passed"),
    [
        (Product.FCR_D_UP, "FcrdUp", {"a75": 0.861}, "REQ2.DP75", True),
        (Product.FCR_D_UP, "FcrdUp", {"a75": 0.859}, "REQ2.DP75", False),
        (Product.FCR_D_DOWN, "FcrdDo", {"a75": 0.861}, "REQ2.DP75", True),
        (Product.FCR_D_DOWN, "FcrdDo", {"a75": 0.859}, "REQ2.DP75", False),
        (
            Product.FCR_D_UP,
            "FcrdUp",
            {"dead5": 4.0, "rise5": 1.0, "a75": 3.203 / 3},
            "REQ3.E75",
            True,
        ),
        (
            Product.FCR_D_DOWN,
            "FcrdDo",
            {"dead5": 4.0, "rise5": 1.0, "a75": 3.197 / 3},
            "REQ3.E75",
            False,
        ),
        (Product.FCR_D_UP, "FcrdUp", {"l3": 1.199}, "REQ1.SS", True),
        (Product.FCR_D_UP, "FcrdUp", {"l3": 1.201}, "REQ1.SS", False),
        (Product.FCR_D_DOWN, "FcrdDo", {"l3": 1.199}, "REQ1.SS", True),
        (Product.FCR_D_DOWN, "FcrdDo", {"l3": 1.201}, "REQ1.SS", False),
        (Product.FCR_D_DOWN, "FcrdDo", {"hold1": 4.9}, "REQ4.DEACT", True),
        (Product.FCR_D_UP, "FcrdUp", {"hold1": 5.0}, "REQ4.DEACT", False),
    ],
)
def test_hand_built_file_at_threshold_edge(
    tmp_path: Path,
    *,
    product: Product,
    service: str,
    kwargs: dict[str, float],
    rule: str,
    passed: bool,
) -> None:
    name = f"Pilot_{service}_Ramp_SE3_CET_20250601T1000-20250601T1018_100ms_20250601.csv"
    path = hand_csv(tmp_path, name, fcrd_series(product, **kwargs), f"Cap_{service}")
    record = read_csv(path)
    assert (record.name.product, record.name.test_type) == (product, TestType.RAMP)
    v = by_id(judge(record.series, record.name.product, record.name.test_type), rule)
    assert v.passed is passed


@pytest.mark.parametrize("product", BOTH)
def test_ramp1_hold_unresolved_at_1hz_is_split_into_ramps_1_and_2(product: Product) -> None:
    # At 1 Hz the 1.8 s hold of ramp 1 is a single sample: detection sees one excursion
    # 49.9 -> 49.9 and splits it at its extreme (the ramp 1 target).
    series = fcrd_series(product, dt=1.0)
    with pytest.raises(SamplingRateError):
        judge(series, product, TestType.RAMP, dp_ss_theo_mw=D)
    verdicts = judge(series, product, TestType.RAMP, dp_ss_theo_mw=D, allow_1hz=True)
    req2 = by_id(verdicts, "REQ2.DP75")
    assert req2.passed
    assert req2.measured == pytest.approx(D, rel=0.05)
    assert by_id(verdicts, "REQ4.DEACT").passed


def test_split_unresolved_hold_leaves_resolved_ramps_alone() -> None:
    from analytics.rules.fcrd import split_unresolved_hold
    from analytics.rules.segments import find_transitions

    t = np.arange(0.0, 1050.0, 0.1)
    f = fcrd_ramp_frequency(t, Product.FCR_D_UP)
    found = find_transitions(t, f)
    assert split_unresolved_hold(found, t, f, 49.9, 49.45) == found
    t1 = np.arange(0.0, 1050.0, 1.0)
    f1 = fcrd_ramp_frequency(t1, Product.FCR_D_UP)
    split = split_unresolved_hold(find_transitions(t1, f1), t1, f1, 49.9, 49.45)
    targets = [49.45, 49.9, 49.5, 49.9, 49.0, 50.0]
    assert [r.f_to for r in split[:6]] == pytest.approx(targets, abs=0.02)


def test_two_close_samples_in_a_slow_ramp_are_no_hold_at_1hz() -> None:
    """A fleet's 1 Hz mean frequency of the demo's ramps 1-2 (from a demo run): during ramp 2
    (0.09 Hz/s) two samples differ by 8 mHz. A hold takes three samples at 1 Hz, so ramps 1
    and 2 are still found (split at ramp 1's extreme)."""
    from analytics.rules.fcrd import split_unresolved_hold
    from analytics.rules.segments import find_transitions

    f = np.array(
        [50.0] * 9
        + [49.967]
        + [49.9] * 14
        + [49.862, 49.792, 49.652, 49.497, 49.45, 49.462, 49.6, 49.702, 49.71, 49.807, 49.892]
        + [49.9] * 6
    )
    t = np.arange(f.size, dtype=np.float64)
    ramps = split_unresolved_hold(find_transitions(t, f), t, f, 49.9, 49.45)
    assert [(r.f_from, r.f_to) for r in ramps][1:] == [(49.9, 49.45), (49.45, 49.9)]
