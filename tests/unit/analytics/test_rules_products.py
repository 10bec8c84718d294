"""The audit's rules and live compliance read one definition of each product's figures.

``contract.products`` holds the figures (frequencies, full-activation times, fractions,
tolerances); ``analytics.rules`` imports them. Each row below ties an audit rule's figure
(as the rule states or uses it) to the live curve's.
"""

from __future__ import annotations

import pytest

from analytics.rules import REGISTRY, fcrd, fcrn, ffr
from contract.enums import Product
from contract.products import CURVES, FFR_OPTIONS, ffr_full_activation_s


def _band(product: Product, *, mirrored: bool = False) -> str:
    """A curve's steady-state tolerances as the rules write them ("-5 %/+20 %")."""
    curve = CURVES[product]
    under, over = f"{curve.under_tolerance * 100:g}", f"{curve.over_tolerance * 100:g}"
    return f"-{over} %/+{under} %" if mirrored else f"-{under} %/+{over} %"


@pytest.mark.parametrize("option_hz", sorted(FFR_OPTIONS))
def test_ffr_option_times_agree(option_hz: float) -> None:
    assert ffr.option_time(option_hz) == ffr_full_activation_s(option_hz)


def test_fcrn_step_levels_are_the_curve_band() -> None:
    curve = CURVES[Product.FCR_N]
    assert curve.f_start_hz is not None
    assert curve.f_full_hz is not None
    mirrored = 2 * curve.f_start_hz - curve.f_full_hz
    start, full, down, end = fcrn.LEVELS_HZ
    assert (start, full, end) == (curve.f_start_hz, curve.f_full_hz, curve.f_start_hz)
    assert down == pytest.approx(mirrored)


# (rule id, the live curve figure as the rule's requirement text must state it)
STATED: list[tuple[str, str]] = [
    ("FCRD_UP.REQ2.DP75", f"ΔP({CURVES[Product.FCR_D_UP].checkpoints[0].after_s:g} s) >= "),
    ("FCRD_DOWN.REQ2.DP75", f">= {CURVES[Product.FCR_D_DOWN].checkpoints[0].min_fraction:g}·"),
    ("FCRD_UP.LEGACY.100PCT_30S", f"{CURVES[Product.FCR_D_UP].full_activation_s:g} s"),
    ("FCRN.LEGACY.UP.63PCT_60S", f"{CURVES[Product.FCR_N].checkpoints[0].after_s:g} s"),
    ("FCRN.LEGACY.DOWN.100PCT_180S", f"{CURVES[Product.FCR_N].full_activation_s / 60:g} min"),
    ("FCRN.REQ1.SS_UP", _band(Product.FCR_N)),
    ("FCRN.REQ1.SS_DOWN", _band(Product.FCR_N, mirrored=True)),
    ("FCRD_UP.REQ1.SS", _band(Product.FCR_D_UP)),
    ("FCRD_DOWN.REQ1.SS", _band(Product.FCR_D_DOWN, mirrored=True)),
    ("FFR.ACTIVATION_TIME", f"{CURVES[Product.FFR].full_activation_s:.1f}/"),
    ("AFRR.FAT", f"{CURVES[Product.AFRR].full_activation_s / 60:g} min"),
    ("MFRR.LEGACY.FAT", f"{CURVES[Product.MFRR].full_activation_s / 60:g} min"),
]


@pytest.mark.parametrize(("rule_id", "stated"), STATED)
def test_rule_texts_state_the_curve_figures(rule_id: str, stated: str) -> None:
    assert stated in REGISTRY.get(rule_id).requirement


def test_fcrd_req2_instant_is_the_live_checkpoint() -> None:
    for product in (Product.FCR_D_UP, Product.FCR_D_DOWN):
        assert CURVES[product].checkpoints[0].after_s == fcrd.T75
