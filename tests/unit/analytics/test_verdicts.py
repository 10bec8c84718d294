"""Verdict.compare: how measured values are judged against thresholds."""

from __future__ import annotations

import math

import pytest

from analytics.verdicts import Comparison, Verdict
from contract.enums import Product
from contract.products import MARKET_PRODUCTS, rule_tag


def make(measured: float, comparison: Comparison, high: float | None = None) -> Verdict:
    return Verdict.compare(
        rule_id="X",
        rule_version="V",
        product=Product.FFR,
        requirement="r",
        reference="ref",
        measured=measured,
        threshold=1.0,
        threshold_high=high,
        unit="s",
        comparison=comparison,
    )


@pytest.mark.parametrize(
    ("measured", "comparison", "high", "passed"),
    [
        (1.0, ">=", None, True),
        (0.999, ">=", None, False),
        (1.0, "<=", None, True),
        (1.001, "<=", None, False),
        (1.5, "between", 2.0, True),
        (2.001, "between", 2.0, False),
        (0.999, "between", 2.0, False),
        (math.nan, ">=", None, False),
        (math.nan, "<=", None, False),
    ],
)
def test_compare(measured: float, comparison: Comparison, high: float | None, passed: bool) -> None:
    assert make(measured, comparison, high).passed is passed


def test_between_needs_an_upper_threshold() -> None:
    with pytest.raises(ValueError, match="threshold_high"):
        make(1.0, "between")


def test_as_dict_maps_nan_to_none() -> None:
    row = make(math.nan, "<=").as_dict()
    assert row["measured"] is None
    assert row["product"] == "FFR"


def test_product_tags() -> None:
    assert [rule_tag(p) for p in MARKET_PRODUCTS] == [
        "FCRN",
        "FCRD_UP",
        "FCRD_DOWN",
        "FFR",
        "AFRR",
        "MFRR",
    ]
