"""Audit of simulated event logs (real archives, no Kafka): activations, verdicts, offenders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.audit.extract import AuditInputError
from analytics.audit.offenders import gain_lag_many
from analytics.audit.run import AuditOptions, AuditResult, audit_log
from analytics.audit.series import canonical
from analytics.freqresp import fit_gain_lag
from analytics.rules import judge
from analytics.rules.base import EAM25, SVK_LEGACY
from analytics.testing.scenario import (
    OEMS,
    START_MS,
    LogBuilder,
    Scenario,
    assignment,
    fcrd_ramp_log,
    mfrr_order_log,
    telemetry,
)
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product


@pytest.fixture(scope="module")
def fcrd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, AuditResult]:
    scenario = fcrd_ramp_log(tmp_path_factory.mktemp("fcrd"))
    return scenario, audit_log(scenario.root, AuditOptions(allow_1hz=True))


@pytest.fixture(scope="module")
def mfrr(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return mfrr_order_log(tmp_path_factory.mktemp("mfrr"))


def expected_fleet(scenario: Scenario, pre_s: float = 30.0) -> Series:
    """The fleet series by the formulas, straight from the simulation (no archive, no SQL)."""
    start_s = (scenario.start_us // 1000 - START_MS) / 1000
    end_s = (scenario.end_us // 1000 - START_MS) / 1000
    keep = (scenario.fleet_t_s >= start_s - pre_s) & (scenario.fleet_t_s <= end_s)
    t = scenario.fleet_t_s[keep]
    power = scenario.fleet_power_mw[keep]
    baseline = float(np.mean(power[t < start_s]))
    signals: dict[str, object] = {}
    if scenario.product is Product.MFRR:
        signals["requested_mw"] = np.where(t >= start_s, scenario.requested_mw, 0.0)
    else:
        signals["grid_freq_hz"] = np.zeros(t.shape)
    return Series(
        t=t - t[0],
        power_mw=power,
        baseline_mw=np.full(t.shape, baseline),
        capacity_mw=np.full(t.shape, scenario.requested_mw),
        start=np.datetime64(int(START_MS + t[0] * 1000), "ms"),
        **signals,  # type: ignore[arg-type]  # Series fields
    )


def test_the_ramp_test_is_found_with_its_product_and_test_type(
    fcrd: tuple[Scenario, AuditResult],
) -> None:
    scenario, result = fcrd
    assert [r.activation.activation_id for r in result.results] == [scenario.activation_id]
    act = result.results[0].activation
    assert (act.product, act.test_type, act.kind) == (Product.FCR_D_UP, TestType.RAMP, "TEST")
    assert result.results[0].error is None


def test_fleet_power_is_the_sum_of_site_power(fcrd: tuple[Scenario, AuditResult]) -> None:
    scenario, result = fcrd
    series = result.results[0].series
    assert series is not None
    want = expected_fleet(scenario)
    assert series.t == pytest.approx(want.t)
    assert series.power_mw == pytest.approx(want.power_mw, abs=1e-9)
    assert series.capacity_mw is not None
    assert series.capacity_mw[0] == pytest.approx(20 * 5.0 / 1000)


def test_verdicts_are_those_of_the_rules_on_the_summed_series(
    fcrd: tuple[Scenario, AuditResult],
) -> None:
    scenario, result = fcrd
    series = result.results[0].series
    assert series is not None
    want_series = Series(
        t=series.t,
        power_mw=expected_fleet(scenario).power_mw,
        grid_freq_hz=series.grid_freq_hz,
        baseline_mw=expected_fleet(scenario).baseline_mw,
        capacity_mw=expected_fleet(scenario).capacity_mw,
        start=series.start,
    )
    want = judge(want_series, Product.FCR_D_UP, TestType.RAMP, allow_1hz=True)
    got = result.results[0].verdicts
    assert [v.rule_id for v in got] == [v.rule_id for v in want]
    for g, w in zip(got, want, strict=True):
        assert g.passed == w.passed, g.rule_id
        assert g.measured == pytest.approx(w.measured, rel=1e-6, abs=1e-9), g.rule_id
    # 18 sites x 1.25, one mirrored, one idle: the fleet delivers (18 - 1) x 1.25 / 20
    ss = next(v for v in got if v.rule_id == "FCRD_UP.REQ1.SS")
    assert ss.detail.startswith("P_ss,3=0.1062 MW")
    assert all(v.passed for v in got)


def test_wrong_polarity_and_overridden_sites_are_offenders(
    fcrd: tuple[Scenario, AuditResult],
) -> None:
    scenario, result = fcrd
    offenders = result.results[0].offenders
    kinds = {(o.site_id, o.kind) for o in offenders}
    assert (scenario.wrong_polarity, "WRONG_POLARITY") in kinds
    assert (scenario.overridden, "OVERRIDDEN") in kinds
    assert (scenario.overridden, "NO_RESPONSE") in kinds
    assert {o.site_id for o in offenders} == {scenario.wrong_polarity, scenario.overridden}
    overridden = next(o for o in offenders if o.kind == "OVERRIDDEN")
    assert "MODE" in overridden.detail
    assert overridden.oem == scenario.sites[overridden.site_id]


def test_dispatch_chain_fopdt_per_oem(fcrd: tuple[Scenario, AuditResult]) -> None:
    _, result = fcrd
    fits = {c.oem: c for c in result.chain_oems}
    assert set(fits) == set(OEMS)
    for oem, (_, dead, tau) in OEMS.items():
        fit = fits[oem]
        assert fit.gain == pytest.approx(1.0, abs=0.02)
        # 1 Hz telemetry of a step commanded on a sample: the simulated input ramps over the
        # sample before it, so the effective dead time is 0.5 s shorter.
        assert fit.dead_time_s == pytest.approx(dead - 0.5, abs=0.35), oem
        assert fit.tau_s == pytest.approx(tau, abs=0.35), oem
    assert len(result.chain_sites) == 20


@pytest.mark.parametrize(
    ("version", "rule_id", "threshold", "passed"),
    [(EAM25, "MFRR.FAT", 300.0, False), (SVK_LEGACY, "MFRR.LEGACY.FAT", 900.0, True)],
)
def test_mfrr_order_judged_by_2025_and_legacy_rules(
    mfrr: Scenario, version: str, rule_id: str, threshold: float, passed: bool
) -> None:
    result = audit_log(mfrr.root, AuditOptions(rule_version=version, product=Product.MFRR))
    (only,) = result.results
    fat = [v for v in only.verdicts if v.rule_id.endswith("FAT")]
    assert [v.rule_id for v in fat] == [rule_id]
    # response ramps from 60 s to 810 s after the order: 100 % at 810 s (no tolerance)
    assert fat[0].measured == pytest.approx(810.0, abs=1e-6)
    assert fat[0].threshold == threshold
    assert fat[0].rule_version == version
    assert fat[0].passed is passed
    assert result.exit_code() == (0 if passed else 1)


def test_mfrr_both_versions_side_by_side(mfrr: Scenario) -> None:
    result = audit_log(mfrr.root, AuditOptions())
    versions = {v.rule_id: v.rule_version for v in result.results[0].verdicts}
    assert versions["MFRR.FAT"] == EAM25
    assert versions["MFRR.LEGACY.FAT"] == SVK_LEGACY


def test_product_filter_and_time_window_select_activations(mfrr: Scenario) -> None:
    assert audit_log(mfrr.root, AuditOptions(product=Product.AFRR)).results == []
    with pytest.raises(AuditInputError, match="no site telemetry"):
        audit_log(mfrr.root, AuditOptions(since_us=mfrr.end_us + 1, until_us=mfrr.end_us + 2))


def test_frequency_event_without_activation_event_is_detected(tmp_path: Path) -> None:
    b = LogBuilder(seed=3)
    assignment(
        b,
        Product.FCR_D_UP,
        capacity_mw=0.03,
        valid_from_us=START_MS * 1000,
        valid_until_us=(START_MS + 3_600_000) * 1000,
        band_hz=(49.9, 49.5),
    )
    t = np.arange(0, 200, dtype=np.float64)
    f = np.where((t >= 100) & (t < 130), 49.7, 50.0)
    for i, oem in enumerate(list(OEMS) * 2):
        site = f"site-{i:05d}"
        sign = -1.0 if i == 0 else 1.0
        power = sign * 5.0 * np.clip((49.9 - f) / 0.4, 0, 1)
        for k in range(t.shape[0]):
            if i == 1 and 105 <= t[k] < 125:  # site-00001: 20 s without telemetry
                continue
            if i == 2 and t[k] >= 60:  # site-00002: silent from 40 s before the window
                continue
            us = (START_MS + int(t[k]) * 1000 + 5 * i) * 1000
            telemetry(b, site, oem, event_us=us, power_kw=float(power[k]), freq_hz=float(f[k]))
    b.write(tmp_path)
    result = audit_log(tmp_path, AuditOptions())
    products = {(r.activation.product, r.activation.detected) for r in result.results}
    assert (Product.FCR_D_UP, True) in products
    fcrd = next(r for r in result.results if r.activation.product is Product.FCR_D_UP)
    assert fcrd.activation.test_type is TestType.OPERATION
    assert fcrd.activation.start == np.datetime64((START_MS + 100_000) * 1000, "us")
    assert fcrd.error is None
    assert [o.site_id for o in fcrd.offenders if o.kind == "WRONG_POLARITY"] == ["site-00000"]
    stale = {o.site_id: o.detail for o in fcrd.offenders if o.kind == "STALE"}
    assert set(stale) == {"site-00001", "site-00002"}
    assert stale["site-00001"].startswith("telemetry gap of 21.0 s")
    assert stale["site-00002"] == "no telemetry in the activation window"
    (polarity,) = fcrd.verdicts
    assert polarity.rule_id == "FCRD_UP.POLARITY"
    # during the 30 s dip: sites 3-5 give +2.5 kW, site 0 -2.5 kW, site 1 +2.5 kW for 10 s
    # of them (the rest is its gap), site 2 nothing; expected 0.5 x 30 kW throughout
    assert polarity.measured == pytest.approx((2 * 2.5 * 30 + 2.5 * 10) / (15.0 * 30), rel=0.05)


def test_canonical_is_idempotent_and_on_whole_milliseconds() -> None:
    t = np.array([0.0, 0.1000004, 0.2, 0.3])
    s = Series(
        t=t,
        power_mw=np.array([0.1234567, -0.0000004, 1.0, 2.5]),
        start=np.datetime64("2026-01-01T00:00:00.0004", "us"),
    )
    c = canonical(s)
    assert c.power_mw.tolist() == [0.123457, 0.0, 1.0, 2.5]
    assert c.t.tolist() == [0.0, 0.1, 0.2, 0.3]
    again = canonical(c)
    assert again.power_mw.tolist() == c.power_mw.tolist()
    assert again.t.tolist() == c.t.tolist()
    assert again.start == c.start


@settings(max_examples=40, deadline=None)
@given(
    lag_steps=st.integers(min_value=0, max_value=8),
    gains=st.lists(st.floats(min_value=-2.0, max_value=2.0), min_size=1, max_size=4),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_gain_lag_many_equals_fit_gain_lag_per_site(
    lag_steps: int, gains: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 60.0, 0.5)
    expected = np.clip((t - 10.0) / 5.0, 0.0, 1.0) + 0.3 * np.clip((t - 35.0) / 3.0, 0.0, 1.0)
    shifted = np.interp(t - lag_steps * 0.5, t, expected, left=float(expected[0]))
    responses = np.vstack([g * shifted + 0.2 + rng.normal(0, 0.01, t.shape) for g in gains])
    many_gain, many_lag = gain_lag_many(t, expected, responses, max_lag_s=6.0)
    for row, g, lag in zip(responses, many_gain, many_lag, strict=True):
        one = fit_gain_lag(t, expected, row, max_lag_s=6.0)
        assert g == pytest.approx(one.gain, rel=1e-9, abs=1e-9)
        assert lag == pytest.approx(one.lag_s)


def test_a_replay_copy_in_the_same_archive_is_audited_apart(tmp_path: Path) -> None:
    mfrr_order_log(tmp_path)
    mfrr_order_log(tmp_path, prefix="copy.", full_after_s=700.0)

    def fat(prefix: str) -> float:
        result = audit_log(tmp_path, AuditOptions(product=Product.MFRR, topic_prefix=prefix))
        (only,) = result.results
        return next(v.measured for v in only.verdicts if v.rule_id == "MFRR.FAT")

    assert fat("") == pytest.approx(810.0)
    assert fat("copy.") == pytest.approx(700.0)
