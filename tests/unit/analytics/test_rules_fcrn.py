"""FCR-N step test (TR25 §3.1.1) and legacy SvK figures on piecewise-linear traces."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from analytics.rules import TestSequenceError, judge, judge_each
from analytics.svkcsv import read_csv
from analytics.testing.sequences import fcrn_step_frequency
from analytics.timeseries import SamplingRateError, Series
from analytics.verdicts import TestType, Verdict
from contract.enums import Product

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
        (0.63 / 60.0, "UP.63PCT_60S", True),
        (0.63 / 60.1, "UP.63PCT_60S", False),
        (1.0 / 179.8, "UP.100PCT_180S", True),  # full on the 200 ms sample grid
        (1.0 / 180.0, "UP.100PCT_180S", True),
        (1.0 / 180.2, "UP.100PCT_180S", False),
    ],
)
def test_legacy_up(k1: float, suffix: str, passed: bool) -> None:
    verdicts = judge(fcrn_series(k1=k1), Product.FCR_N, TestType.STEP, "SVK-LEGACY")
    v = by_id(verdicts, suffix)
    # the slowest up step is step 1 (the return 50.1 -> 50.0 Hz takes 10 s)
    assert v.measured == pytest.approx((0.63 if "63" in suffix else 1.0) / k1, abs=1e-6)
    assert v.passed is passed


@pytest.mark.parametrize(
    ("k2", "suffix", "passed"),
    [
        (1.26 / 59.9, "DOWN.63PCT_60S", True),
        (2.0 / 179.9, "DOWN.100PCT_180S", True),
        (2.0 / 180.1, "DOWN.100PCT_180S", False),
    ],
)
def test_legacy_down_is_judged_on_the_double_step(k2: float, suffix: str, passed: bool) -> None:
    v = by_id(judge(fcrn_series(k2=k2), Product.FCR_N, TestType.STEP, "SVK-LEGACY"), suffix)
    assert v.passed is passed


@pytest.mark.parametrize(("l1", "passed"), [(0.999, False), (1.0, True), (1.001, True)])
def test_legacy_100_percent_means_full(l1: float, passed: bool) -> None:
    v = by_id(
        judge(fcrn_series(l1=l1, l2=-l1), Product.FCR_N, TestType.STEP, "SVK-LEGACY"),
        "UP.100PCT_180S",
    )
    assert v.passed is passed


def legacy_series(levels: list[float], *, hold: float = 300.0, tau: float = 20.0) -> Series:
    """The legacy test as it was run: holds of ``hold`` s at ``levels``; the response
    follows each step as a first-order lag reaching 100 % (ramped, then exact) in 3·tau."""
    dt = 0.2
    end = hold * len(levels)
    t = np.round(np.arange(0.0, end + dt / 2, dt), 9)
    f = np.array(levels)[np.minimum((t // hold).astype(int), len(levels) - 1)]
    target = D * np.clip((50.0 - f) / 0.1, -1.0, 1.0)
    power = np.empty_like(t)
    prev, start = float(target[0]), 0.0
    for k, ti in enumerate(t):
        if k and target[k] != target[k - 1]:
            prev, start = float(power[k - 1]), ti
        x = min((ti - start) / (3 * tau), 1.0)
        power[k] = prev + (target[k] - prev) * x
    return Series(t=t, power_mw=2.0 + power, applied_freq_hz=f, capacity_mw=np.full_like(t, D))


@pytest.mark.parametrize(
    "levels",
    [
        [50.0, 49.9, 50.0, 50.1, 50.0],  # with returns to 50.0 Hz
        [50.0, 50.1, 50.0, 49.9, 50.0],  # the other order
        [50.0, 49.9, 50.1, 50.0],  # TR25 Table 3 order (no pre-step)
    ],
)
def test_legacy_steps_in_any_order_with_returns(levels: list[float]) -> None:
    s = legacy_series(levels)
    verdicts = judge(s, Product.FCR_N, TestType.STEP, "SVK-LEGACY")
    got = {v.rule_id.split("LEGACY.")[1]: v for v in verdicts if "LEGACY" in v.rule_id}
    assert set(got) == {"UP.63PCT_60S", "UP.100PCT_180S", "DOWN.63PCT_60S", "DOWN.100PCT_180S"}
    assert all(v.passed for v in got.values())
    assert got["UP.100PCT_180S"].measured == pytest.approx(60.0, abs=1e-6)  # 3·tau
    assert got["UP.63PCT_60S"].measured == pytest.approx(0.63 * 60.0, abs=1e-6)
    steps = sum(1 for a, b in itertools.pairwise(levels) if a != b)
    assert (
        got["UP.100PCT_180S"].detail.count("Hz at t=")
        + got["DOWN.100PCT_180S"].detail.count("Hz at t=")
        == steps
    )


def test_legacy_slow_step_fails_on_its_own() -> None:
    s = legacy_series([50.0, 49.9, 50.0, 50.1, 50.0], tau=20.0)
    slow = s.power_mw.copy()
    k = (s.t >= 900.0) & (s.t < 1200.0)  # the step to 50.1 Hz reaches -100 % after 200 s
    slow[k] = 2.0 - D * np.clip((s.t[k] - 900.0) / 200.0, 0.0, 1.0)
    series = Series(
        t=s.t, power_mw=slow, applied_freq_hz=s.applied_freq_hz, capacity_mw=s.capacity_mw
    )
    verdicts = judge(series, Product.FCR_N, TestType.STEP, "SVK-LEGACY")
    down = by_id(verdicts, "DOWN.100PCT_180S")
    assert down.measured == pytest.approx(200.0, abs=1e-6)
    assert not down.passed
    assert "50.00->50.10 Hz at t=900.0 s: 200.0 s" in down.detail
    assert by_id(verdicts, "UP.100PCT_180S").passed


def test_legacy_without_a_down_step_names_what_was_found() -> None:
    s = legacy_series([50.0, 49.9])  # no return: the 50.0 -> 49.9 Hz step only
    verdicts, errors = judge_each(s, Product.FCR_N, TestType.STEP, "SVK-LEGACY")
    assert {v.rule_id for v in verdicts} >= {
        "FCRN.LEGACY.UP.63PCT_60S",
        "FCRN.LEGACY.UP.100PCT_180S",
    }
    down = dict(errors)["FCRN.LEGACY.DOWN.100PCT_180S"]
    assert "no down step found" in down
    assert "holds at [50.0, 49.9]" in down
    assert "±0.1 Hz between 49.9, 50.0 and 50.1 Hz" in down


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
