"""LER endurance and NEM state (TR25 §3.5, Table 11); optional inputs are skipped, listed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analytics.rules import MissingParameterError, judge, skipped_rules
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product

T = np.arange(0.0, 3601.0, 1.0)
# SOC 60 % -> 20 % -> 60 %; with C = 1 MW and E = 2 MWh, L_up = SOC·120 min: NEM (FCR-N)
# must turn on below 30 min (SOC 25 %, t = 1575 s) and off above 57.5 min (SOC 47.92 %,
# t = 1800 + 1800·(47.916.. - 20)/40 s).
SOC = np.interp(T, [0.0, 1800.0, 3600.0], [60.0, 20.0, 60.0])
T_ON = 1575.0
T_OFF = 1800.0 + 1800.0 * (100 * 57.5 / 120 - 20.0) / 40.0


def fcrn(nem: np.ndarray, freq: np.ndarray | None = None) -> Series:
    return Series(
        t=T,
        power_mw=np.zeros_like(T),
        grid_freq_hz=np.full_like(T, 50.0) if freq is None else freq,
        soc_pct=SOC,
        extra={"NEM_Fcrn": nem},
    )


def nem_verdict(series: Series, **kwargs: Any) -> tuple[float, bool]:
    (v,) = judge(
        series,
        Product.FCR_N,
        TestType.OPERATION,
        only=["FCRN.LER.NEM_STATE"],
        capacity_mw=1.0,
        energy_capacity_mwh=2.0,
        **kwargs,
    )
    return v.measured, v.passed


def flag(on: float, off: float) -> np.ndarray:
    return ((on < T) & (off >= T)).astype(np.float64)


def test_nem_reported_as_required_passes() -> None:
    assert nem_verdict(fcrn(flag(T_ON, T_OFF))) == (0.0, True)


def test_nem_late_within_the_grace_passes_and_beyond_fails() -> None:
    assert nem_verdict(fcrn(flag(T_ON + 120, T_OFF + 120)))[1]
    measured, passed = nem_verdict(fcrn(flag(T_ON + 120, T_OFF + 120)), nem_grace_s=60.0)
    assert not passed
    assert measured == pytest.approx(2 * 60, abs=2)


def test_nem_never_on_fails_with_the_count() -> None:
    measured, passed = nem_verdict(fcrn(np.zeros_like(T)))
    assert not passed
    assert measured == pytest.approx(T_OFF - T_ON - 300, abs=2)


def test_nem_is_off_outside_the_normal_band() -> None:
    freq = np.where((T > 2000) & (T <= 2400), 49.85, 50.0)
    reported = flag(T_ON, T_OFF) * (freq > 49.9)
    assert nem_verdict(fcrn(reported, freq)) == (0.0, True)
    assert not nem_verdict(fcrn(flag(T_ON, T_OFF), freq))[1]


def test_fcrd_up_manages_only_the_low_side() -> None:
    # FCR-D up: NEM on below 20 min up (SOC < 16.7 % of 2 MWh at C = 1 MW): never here.
    s = Series(
        t=T,
        power_mw=np.zeros_like(T),
        grid_freq_hz=np.full_like(T, 50.0),
        soc_pct=SOC,
        extra={"NEM_FcrdUp": np.zeros_like(T)},
    )
    verdicts = judge(
        s, Product.FCR_D_UP, TestType.OPERATION, capacity_mw=1.0, energy_capacity_mwh=2.0
    )
    by_id = {v.rule_id: v for v in verdicts}
    assert by_id["FCRD_UP.LER.NEM_STATE"].passed
    assert by_id["FCRD_UP.LER.ENDURANCE"].measured == pytest.approx(0.2 * 120, abs=1e-9)


def test_optional_rules_are_skipped_and_listed() -> None:
    s = Series(t=T, power_mw=np.zeros_like(T), grid_freq_hz=np.full_like(T, 50.0))
    verdicts = judge(s, Product.FCR_N, TestType.OPERATION, capacity_mw=1.0)
    assert verdicts == []
    assert skipped_rules(s, Product.FCR_N, TestType.OPERATION, capacity_mw=1.0) == [
        ("FCRN.POLARITY", "an activation (the expected response is zero throughout)"),
        ("FCRN.LER.ENDURANCE", "param:energy_capacity_mwh"),
        ("FCRN.LER.NEM_STATE", "param:energy_capacity_mwh"),
    ]
    with pytest.raises(MissingParameterError, match=r"FCRN\.POLARITY needs .*an activation"):
        judge(s, Product.FCR_N, TestType.OPERATION, strict=True, capacity_mw=1.0)
    with pytest.raises(MissingParameterError, match="energy_capacity_mwh"):
        judge(s, Product.FCR_N, TestType.OPERATION, only=["FCRN.LER.ENDURANCE"], capacity_mw=1.0)
