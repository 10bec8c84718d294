"""Registry, judge(), polarity per site/fleet and LER endurance."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from analytics.rules import (
    REGISTRY,
    NoRulesError,
    UnknownParameterError,
    UnknownRuleVersionError,
    judge,
    polarity_offenders,
    required_sampling,
)
from analytics.rules.base import MissingParameterError
from analytics.testing.sequences import simulate_fcr_test
from analytics.timeseries import Series
from analytics.verdicts import TestType, verdicts_to_json
from contract.enums import Product
from contract.products import MARKET_PRODUCTS


def test_registry_lists_every_product_and_version() -> None:
    assert {r.product for r in REGISTRY} == set(MARKET_PRODUCTS)
    assert REGISTRY.versions() == sorted(
        ["TR-2025-03-28", "SVK-LEGACY", "EAM-2025-03-04", "FAT-5MIN", "SVK-FFR", "FLOWERHUB-1"]
    )
    legacy = REGISTRY.select(version="SVK-LEGACY")
    assert {r.version for r in legacy} == {"SVK-LEGACY", "FLOWERHUB-1"}
    ramp_up = REGISTRY.select(Product.FCR_D_UP, TestType.RAMP, "TR-2025-03-28")
    assert [r.rule_id for r in ramp_up] == [
        "FCRD_UP.REQ1.SS",
        "FCRD_UP.REQ2.DP75",
        "FCRD_UP.REQ3.E75",
        "FCRD_UP.REQ23.SUSTAIN",
        "FCRD_UP.REQ4.DEACT",
        "FCRD_UP.POLARITY",
    ]
    for rule in REGISTRY:
        assert rule.requirement
        assert rule.reference
    listing = REGISTRY.get("FCRD_DOWN.REQ2.DP75").describe()
    assert listing["rule_version"] == "TR-2025-03-28"
    assert listing["test_types"] == ["Ramp"]
    assert str(listing["sampling"]).startswith("FCR-D test logging >= 10 Hz")


def test_unknown_version_parameter_and_empty_selection_are_typed_errors() -> None:
    s = simulate_fcr_test(Product.FCR_N, "step", dp_ss_mw=1.0, tau_s=5.0)
    with pytest.raises(UnknownRuleVersionError, match="TR-2099"):
        judge(s, Product.FCR_N, TestType.STEP, "TR-2099")
    with pytest.raises(UnknownParameterError, match="dp_ss_mw"):
        judge(s, Product.FCR_N, TestType.STEP, dp_ss_mw=1.0)
    with pytest.raises(NoRulesError):
        judge(s, Product.FCR_N, TestType.STEP, "EAM-2025-03-04", only=["FCRN.REQ1.SS_UP"])


@pytest.mark.parametrize(
    ("product", "test_type", "allow_1hz", "interval"),
    [
        (Product.FCR_D_UP, TestType.RAMP, False, 0.1),
        (Product.FCR_D_DOWN, TestType.RAMP, True, 1.0),
        (Product.FCR_N, TestType.STEP, False, 0.2),
        (Product.FFR, TestType.ACTIVATION, False, 0.1),
        (Product.MFRR, TestType.ACTIVATION, False, 1.0),
    ],
)
def test_required_sampling(
    product: Product, test_type: TestType, allow_1hz: bool, interval: float
) -> None:
    need = required_sampling(product, test_type, allow_1hz=allow_1hz)
    assert need is not None
    assert need.max_interval_s == interval


def fcrn_operation(sign: float, *, baseline: bool = True) -> Series:
    t = np.arange(0.0, 600.0, 1.0)
    f = 50.0 + 0.08 * np.sin(2 * np.pi * t / 120.0)
    response = sign * 0.5 * np.clip((50.0 - f) / 0.1, -1.0, 1.0)
    base = np.full_like(t, 2.0)
    return Series(
        t=t,
        power_mw=base + response,
        grid_freq_hz=f,
        baseline_mw=base if baseline else None,
        capacity_mw=np.full_like(t, 0.5),
    )


@pytest.mark.parametrize(("sign", "passed"), [(1.0, True), (0.0, True), (-1.0, False)])
def test_polarity_fleet(sign: float, passed: bool) -> None:
    (v,) = judge(fcrn_operation(sign), Product.FCR_N, TestType.OPERATION, only=["FCRN.POLARITY"])
    assert v.measured == pytest.approx(sign, abs=0.02)
    assert v.passed is passed


def test_polarity_without_baseline_uses_the_inactive_samples() -> None:
    (v,) = judge(
        fcrn_operation(-1.0, baseline=False),
        Product.FCR_N,
        TestType.OPERATION,
        only=["FCRN.POLARITY"],
    )
    assert not v.passed


def test_polarity_offenders_per_site() -> None:
    sites = {
        "site-a": fcrn_operation(1.0),
        "site-b": fcrn_operation(-1.0),
        "site-c": fcrn_operation(0.3),
    }
    assert polarity_offenders(sites, Product.FCR_N, TestType.OPERATION) == ["site-b"]


def test_polarity_needs_an_activation() -> None:
    t = np.arange(0.0, 60.0)
    quiet = Series(t=t, power_mw=np.zeros_like(t), grid_freq_hz=np.full_like(t, 50.0))
    with pytest.raises(MissingParameterError, match="an activation"):
        judge(quiet, Product.FCR_N, TestType.OPERATION, only=["FCRN.POLARITY"], capacity_mw=1.0)


def ler_series(soc: float) -> Series:
    t = np.arange(0.0, 3600.0, 10.0)
    return Series(
        t=t,
        power_mw=np.zeros_like(t),
        soc_pct=np.full_like(t, soc),
        grid_freq_hz=np.full_like(t, 50.0),
    )


@pytest.mark.parametrize(
    ("product", "energy", "soc", "passed"),
    [
        # FCR-N, C = 1 MW: at 50 % both directions hold E/2; 60 min needs E >= 2 MWh
        (Product.FCR_N, 2.01, 50.0, True),
        (Product.FCR_N, 1.99, 50.0, False),
        # FCR-D up: 20 min up from SOC 10 % needs 0.1·E >= 1/3 MWh
        (Product.FCR_D_UP, 3.34, 10.0, True),
        (Product.FCR_D_UP, 3.33, 10.0, False),
        # FCR-D down: 20 min of headroom above SOC 90 %
        (Product.FCR_D_DOWN, 3.34, 90.0, True),
        (Product.FCR_D_DOWN, 3.33, 90.0, False),
    ],
)
def test_ler_endurance(product: Product, energy: float, soc: float, passed: bool) -> None:
    tag = {Product.FCR_N: "FCRN", Product.FCR_D_UP: "FCRD_UP", Product.FCR_D_DOWN: "FCRD_DOWN"}
    rule = f"{tag[product]}.LER.ENDURANCE"
    (v,) = judge(
        ler_series(soc),
        product,
        TestType.OPERATION,
        only=[rule],
        capacity_mw=1.0,
        energy_capacity_mwh=energy,
    )
    assert v.passed is passed


def test_ler_endurance_from_energy_and_power() -> None:
    # 1 MW discharge for 360 s uses 0.1 MWh of 2 MWh: SOC 60 % -> 55 %; C = 1 MW.
    t = np.arange(0.0, 361.0, 1.0)
    s = Series(t=t, power_mw=np.ones_like(t), grid_freq_hz=np.full_like(t, 50.0))
    kwargs: dict[str, Any] = {
        "capacity_mw": 1.0,
        "energy_capacity_mwh": 2.0,
        "initial_soc_pct": 60.0,
    }
    (up,) = judge(s, Product.FCR_D_UP, TestType.OPERATION, only=["FCRD_UP.LER.ENDURANCE"], **kwargs)
    assert up.measured == pytest.approx((1.1) * 60.0, abs=1e-9)  # 1.1 MWh left at the end
    (n,) = judge(s, Product.FCR_N, TestType.OPERATION, only=["FCRN.LER.ENDURANCE"], **kwargs)
    assert n.measured == pytest.approx(0.8 * 60.0, abs=1e-9)  # 0.8 MWh headroom at the start
    assert not n.passed
    with pytest.raises(MissingParameterError, match="initial_soc_pct"):
        judge(
            s,
            Product.FCR_N,
            TestType.OPERATION,
            only=["FCRN.LER.ENDURANCE"],
            capacity_mw=1.0,
            energy_capacity_mwh=2.0,
        )


def test_verdicts_serialise_to_json() -> None:
    s = simulate_fcr_test(Product.FCR_N, "step", dp_ss_mw=1.0, tau_s=5.0)
    verdicts = judge(s, Product.FCR_N, TestType.STEP)
    rows = json.loads(verdicts_to_json(verdicts))
    assert len(rows) == len(verdicts)
    assert rows[0]["product"] == "FCR_N"
    assert {"rule_id", "rule_version", "measured", "threshold", "unit", "passed"} <= set(rows[0])
