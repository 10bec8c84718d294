"""Delivered response per product (analytics.delivered): the curves of contract.products,
the other products taken off, and the SvK CSV columns that carry it (CalcBaseline,
Activated_<Service>)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.delivered import (
    activated_column,
    column_product,
    delivered_mw,
    expected,
    fraction,
    other_products,
    others_mw,
)
from analytics.rules import judge
from analytics.rules.base import Context, Params
from analytics.svkcsv import read_csv
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import CURVES, MARKET_PRODUCTS, curve_fraction

FREQUENCY_PRODUCTS = [p for p in MARKET_PRODUCTS if CURVES[p].frequency_activated]


@given(
    product=st.sampled_from(FREQUENCY_PRODUCTS),
    f=st.floats(48.5, 51.5, allow_nan=False),
)
def test_the_vectorised_curve_is_contract_products_curve(product: Product, f: float) -> None:
    """One definition: the audit's per-sample curve equals contract.products' (which live
    compliance uses), everywhere."""
    assert fraction(product, np.array([f]))[0] == pytest.approx(
        curve_fraction(CURVES[product], f), abs=1e-12
    )


@pytest.mark.parametrize(
    ("product", "f", "want"),
    [
        (Product.FCR_N, 50.0, 0.0),
        (Product.FCR_N, 49.95, 0.5),
        (Product.FCR_N, 49.7, 1.0),
        (Product.FCR_N, 50.2, -1.0),
        (Product.FCR_D_UP, 49.9, 0.0),
        (Product.FCR_D_UP, 49.7, 0.5),
        (Product.FCR_D_UP, 49.0, 1.0),
        (Product.FCR_D_UP, 50.3, 0.0),
        (Product.FCR_D_DOWN, 50.3, -0.5),
        (Product.FCR_D_DOWN, 49.7, 0.0),
        (Product.FFR, 49.71, 0.0),
        (Product.FFR, 49.7, 1.0),
        (Product.AFRR, 49.0, 1.0),  # an order's change is its expected response
        (Product.MFRR, 50.5, 1.0),
    ],
)
def test_fraction_table(product: Product, f: float, want: float) -> None:
    assert fraction(product, np.array([f]))[0] == pytest.approx(want)


def test_nothing_armed_expects_nothing_even_without_a_frequency() -> None:
    got = expected(Product.FCR_N, np.array([0.0, 2.0, 0.0]), np.array([np.nan, 49.9, np.nan]))
    assert got.tolist() == [0.0, 2.0, 0.0]
    assert np.isnan(expected(Product.FCR_N, np.array([1.0]), np.array([np.nan]))[0])


def _series(**extra: np.ndarray) -> Series:
    t = np.arange(4.0)
    return Series(
        t=t,
        power_mw=np.array([1.0, 2.0, 3.0, 4.0]),
        baseline_mw=np.array([0.5, 0.5, 1.0, 1.0]),
        grid_freq_hz=np.full(4, 49.7),
        extra=extra,
    )


@pytest.mark.parametrize(
    ("columns", "product", "want"),
    [
        ({}, Product.FCR_D_UP, [0.5, 1.5, 2.0, 3.0]),  # power - baseline
        ({"Activated_Fcrn": np.full(4, 0.25)}, Product.FCR_D_UP, [0.25, 1.25, 1.75, 2.75]),
        ({"Activated_Fcrn": np.full(4, 0.25)}, Product.FCR_N, [0.5, 1.5, 2.0, 3.0]),  # own
        (
            {"Activated_Fcrn": np.full(4, 0.25), "Activated_Mfrr": np.array([0, 0, 1.0, 1.0])},
            Product.FCR_D_UP,
            [0.25, 1.25, 0.75, 1.75],
        ),
        ({"NEM_Fcrn": np.full(4, 9.0)}, Product.FCR_N, [0.5, 1.5, 2.0, 3.0]),  # not activated
    ],
)
def test_delivered_table(
    columns: dict[str, np.ndarray], product: Product, want: list[float]
) -> None:
    s = _series(**columns)
    np.testing.assert_allclose(delivered_mw(s, product), want)
    ctx = Context(s, product, Params())
    np.testing.assert_allclose(ctx.response(), want)  # what every rule reads
    took = others_mw(s, product)
    assert (took is None) == (not other_products(s, product))


def test_column_names_round_trip() -> None:
    for product in MARKET_PRODUCTS:
        assert column_product(activated_column(product)) is product
    assert activated_column(Product.FCR_D_DOWN) == "Activated_FcrdDo"
    assert column_product("CalcBaseline") is None


def _csv(tmp_path: Path, header: str, rows: list[str]) -> Path:
    path = (
        tmp_path / "Fleet1_FcrdUp_Operation_SE3_UTC_20250601T1200-20250601T1201_1000ms_20250601.csv"
    )
    path.write_text("\r\n".join([header, *rows]) + "\r\n", encoding="ascii")
    return path


def test_svk_csv_reader_uses_calcbaseline_and_the_other_products_activated(
    tmp_path: Path,
) -> None:
    """InsAcPow - CalcBaseline - Activated_Fcrn is FCR-D up's delivered response; its own
    Activated_FcrdUp column is not taken off."""
    rows = [
        f"20250601T1200{s:02d}.000,{p},{f},{b},0.4,{n},{d}"
        for s, (p, f, b, n, d) in enumerate(
            [
                (0.50, 50.00, 0.50, 0.0, 0.0),
                (0.50, 50.00, 0.50, 0.0, 0.0),
                (0.90, 49.70, 0.40, 0.2, 0.2),  # the baseline fell 0.1 MW with the load
                (0.90, 49.70, 0.40, 0.2, 0.2),
                (0.95, 49.70, 0.45, 0.2, 0.2),
            ]
        )
    ]
    path = _csv(
        tmp_path,
        "DateTime,InsAcPow,GridFreq,CalcBaseline,Cap_FcrdUp,Activated_Fcrn,Activated_FcrdUp",
        rows,
    )
    rec = read_csv(path)
    assert rec.series.baseline_mw is not None
    np.testing.assert_allclose(rec.series.baseline_mw, [0.5, 0.5, 0.4, 0.4, 0.45])
    np.testing.assert_allclose(
        delivered_mw(rec.series, Product.FCR_D_UP), [0.0, 0.0, 0.3, 0.3, 0.3], atol=1e-12
    )
    (verdict,) = judge(rec.series, Product.FCR_D_UP, TestType.OPERATION)
    assert verdict.rule_id == "FCRD_UP.POLARITY"
    assert verdict.passed
    assert verdict.measured == pytest.approx(1.5)  # 0.3 MW delivered of 0.2 MW expected


def test_svk_csv_without_calcbaseline_judges_power_as_before(tmp_path: Path) -> None:
    rows = [
        f"20250601T1200{s:02d}.000,{p},{f},0.4"
        for s, (p, f) in enumerate([(0.5, 50.0), (0.5, 50.0), (0.7, 49.7), (0.7, 49.7)])
    ]
    rec = read_csv(_csv(tmp_path, "DateTime,InsAcPow,GridFreq,Cap_FcrdUp", rows))
    assert rec.series.baseline_mw is None
    np.testing.assert_allclose(delivered_mw(rec.series, Product.FCR_D_UP), [0.5, 0.5, 0.7, 0.7])
    (verdict,) = judge(rec.series, Product.FCR_D_UP, TestType.OPERATION)
    assert "fitted baseline" in verdict.detail  # no CalcBaseline: the offset is fitted
