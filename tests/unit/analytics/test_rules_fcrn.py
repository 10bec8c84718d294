"""FCR-N step test (TR25 §3.1.1) and legacy SvK figures on piecewise-linear traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analytics.rules import TestSequenceError, judge
from analytics.svkcsv import read_csv
from analytics.testing.sequences import fcrn_step_frequency
from analytics.timeseries import SamplingRateError, Series
from analytics.verdicts import Product, TestType, Verdict

D = 0.8  # MW


def fcrn_series(
    *, dt: float = 0.2, l1: float = 1.0, l2: float = -1.0, k1: float = 0.1, k2: float = 0.2
) -> Series:
    """Response in units of D: step 1 rises at k1 D/s to l1, step 2 falls at k2 D/s to l2."""
    pts = [(0.0, 0.0), (30.0, 0.0), (32.0, 0.5), (60.0, 0.5), (62.0, 0.0), (360.0, 0.0)]
    pts += [(360.0 + l1 / k1, l1), (660.0, l1), (660.0 + (l1 - l2) / k2, l2), (960.0, l2)]
    pts += [(970.0, 0.0), (1260.0, 0.0)]
    t = np.round(np.arange(0.0, 1260.0 + dt / 2, dt), 9)
    xs, ys = zip(*pts, strict=True)
    return Series(
        t=t,
        power_mw=5.0 + D * np.interp(t, xs, ys),  # 5 MW baseline: only differences matter
        applied_freq_hz=fcrn_step_frequency(t),
        capacity_mw=np.full_like(t, D),
    )


def by_id(verdicts: list[Verdict], suffix: str) -> Verdict:
    (v,) = [v for v in verdicts if v.rule_id.endswith(suffix)]
    return v


def test_ideal_steps_pass_every_rule() -> None:
    verdicts = judge(fcrn_series(), Product.FCR_N, TestType.STEP)
    assert len(verdicts) == 7
    assert [v.rule_id for v in verdicts if not v.passed] == []


@pytest.mark.parametrize(
    ("l1", "passed"), [(0.951, True), (0.949, False), (1.199, True), (1.201, False)]
)
def test_req1_up_bounds(l1: float, passed: bool) -> None:
    v = by_id(judge(fcrn_series(l1=l1), Product.FCR_N, TestType.STEP), "SS_UP")
    assert v.measured == pytest.approx(l1 - 1.0, abs=1e-9)
    assert (v.threshold, v.threshold_high) == (-0.05, 0.20)
    assert v.passed is passed


@pytest.mark.parametrize(
    ("l2", "passed"), [(-0.951, True), (-0.949, False), (-1.199, True), (-1.201, False)]
)
def test_req1_down_bounds(l2: float, passed: bool) -> None:
    v = by_id(judge(fcrn_series(l2=l2), Product.FCR_N, TestType.STEP), "SS_DOWN")
    assert v.measured == pytest.approx(l2 + 1.0, abs=1e-9)
    assert (v.threshold, v.threshold_high) == (-0.20, 0.05)
    assert v.passed is passed


def test_steady_state_uses_the_average_of_p_ss0_and_p_ss3() -> None:
    # a baseline drift of +0.1·D between step 0 and step 3 is halved out of ΔP_ss,1
    base = fcrn_series()
    drift = np.interp(base.t, [0.0, 960.0, 965.0, 1260.0], [0.0, 0.0, 0.1 * D, 0.1 * D])
    series = Series(t=base.t, power_mw=base.power_mw + drift, applied_freq_hz=base.applied_freq_hz)
    v = by_id(judge(series, Product.FCR_N, TestType.STEP, dp_ss_theo_mw=D), "SS_UP")
    assert v.measured == pytest.approx(-0.05, abs=1e-9)


@pytest.mark.parametrize(
    ("k1", "suffix", "passed"),
    [
        (0.63 / 59.9, "UP.63PCT_60S", True),
        (0.63 / 60.1, "UP.63PCT_60S", False),
        (0.95 / 179.9, "UP.100PCT_180S", True),
        (0.95 / 180.1, "UP.100PCT_180S", False),
    ],
)
def test_legacy_up(k1: float, suffix: str, passed: bool) -> None:
    verdicts = judge(fcrn_series(k1=k1), Product.FCR_N, TestType.STEP, "SVK-LEGACY")
    v = by_id(verdicts, suffix)
    assert v.measured == pytest.approx((0.63 if "63" in suffix else 0.95) / k1, abs=1e-6)
    assert v.passed is passed


@pytest.mark.parametrize(
    ("k2", "suffix", "passed"),
    [(1.26 / 59.9, "DOWN.63PCT_60S", True), (1.9 / 180.1, "DOWN.100PCT_180S", False)],
)
def test_legacy_down_is_judged_on_the_double_step(k2: float, suffix: str, passed: bool) -> None:
    v = by_id(judge(fcrn_series(k2=k2), Product.FCR_N, TestType.STEP, "SVK-LEGACY"), suffix)
    assert v.passed is passed


def test_sampling_below_5hz_is_rejected_with_the_requirement() -> None:
    with pytest.raises(SamplingRateError, match="FCR-N test logging >= 5 Hz"):
        judge(fcrn_series(dt=0.5), Product.FCR_N, TestType.STEP)


def test_missing_step_is_a_sequence_error() -> None:
    s = fcrn_series()
    flat = np.where(s.t >= 660.0, 50.0, s.frequency("test"))
    with pytest.raises(TestSequenceError, match=r"50.0, 49.9, 50.1, 50.0"):
        judge(
            Series(t=s.t, power_mw=s.power_mw, applied_freq_hz=flat),
            Product.FCR_N,
            TestType.STEP,
            capacity_mw=D,
        )


def test_step_bounds_replace_detection() -> None:
    s = fcrn_series(l1=1.1)
    bare = Series(t=s.t, power_mw=s.power_mw)
    v = by_id(
        judge(
            bare,
            Product.FCR_N,
            TestType.STEP,
            "TR-2025-03-28",
            only=["FCRN.REQ1.SS_UP"],
            dp_ss_theo_mw=D,
            step_bounds_s=(60.0, 360.0, 660.0, 960.0, 1260.0),
        ),
        "SS_UP",
    )
    assert v.measured == pytest.approx(0.1, abs=1e-9)


@pytest.mark.parametrize(("l1", "passed"), [(0.951, True), (0.949, False)])
def test_hand_built_file_at_threshold_edge(tmp_path: Path, l1: float, passed: bool) -> None:
    s = fcrn_series(l1=l1)
    lines = ["DateTime,InsAcPow,ApplFreqSig,Cap_Fcrn"]
    for t, p, f in zip(s.t, s.power_mw, s.frequency("test"), strict=True):
        ms = round(t * 1000)
        mm, ss = ms // 60_000, ms // 1000 % 60
        stamp = f"20250601T{8 + mm // 60:02d}{mm % 60:02d}{ss:02d}.{ms % 1000:03d}"
        lines.append(f"{stamp},{p:.5f},{f:.3f},{D:.3f}")
    path = tmp_path / "Unit7_Fcrn_Step_SE4_UTC_20250601T0800-20250601T0821_200ms_20250602.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    record = read_csv(path)
    v = by_id(judge(record.series, Product.FCR_N, TestType.STEP), "SS_UP")
    assert v.passed is passed
