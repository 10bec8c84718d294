"""Product activation curves (svk-requirements §1) and timing checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contract.enums import Product
from contract.errors import InvalidConfigError
from contract.products import (
    CURVES,
    activation_fraction,
    curve_for,
    curve_fraction,
    ffr_full_activation_s,
    required_fraction_by,
    required_response_mw,
)

# (product, frequency Hz, expected fraction; > 0 = discharge)
CURVE_POINTS: list[tuple[Product, float, float]] = [
    (Product.FCR_N, 50.0, 0.0),
    (Product.FCR_N, 49.95, 0.5),
    (Product.FCR_N, 49.9, 1.0),
    (Product.FCR_N, 49.5, 1.0),
    (Product.FCR_N, 50.05, -0.5),
    (Product.FCR_N, 50.1, -1.0),
    (Product.FCR_N, 50.3, -1.0),
    (Product.FCR_D_UP, 50.0, 0.0),
    (Product.FCR_D_UP, 49.9, 0.0),
    (Product.FCR_D_UP, 49.7, 0.5),
    (Product.FCR_D_UP, 49.5, 1.0),
    (Product.FCR_D_UP, 49.0, 1.0),
    (Product.FCR_D_UP, 50.3, 0.0),
    (Product.FCR_D_DOWN, 50.0, 0.0),
    (Product.FCR_D_DOWN, 50.1, 0.0),
    (Product.FCR_D_DOWN, 50.3, -0.5),
    (Product.FCR_D_DOWN, 50.5, -1.0),
    (Product.FCR_D_DOWN, 51.0, -1.0),
    (Product.FCR_D_DOWN, 49.7, 0.0),
    (Product.FFR, 49.71, 0.0),
    (Product.FFR, 49.7, 1.0),
    (Product.FFR, 49.2, 1.0),
]


@pytest.mark.parametrize(("product", "frequency", "expected"), CURVE_POINTS)
def test_curve_points(product: Product, frequency: float, expected: float) -> None:
    assert curve_fraction(CURVES[product], frequency) == pytest.approx(expected, abs=1e-9)


def test_deadband_zeroes_small_deviations_without_shifting_the_line() -> None:
    def fcr_n(f: float) -> float:
        return activation_fraction(
            f, f_start_hz=50.0, f_full_hz=49.9, deadband_hz=0.01, symmetric=True
        )

    assert fcr_n(49.995) == 0.0
    assert fcr_n(49.98) == pytest.approx(0.2)


def test_required_response_scales_capacity() -> None:
    assert required_response_mw(CURVES[Product.FCR_D_UP], 2.0, 49.7) == pytest.approx(1.0)
    assert required_response_mw(CURVES[Product.FCR_D_DOWN], 2.0, 50.5) == pytest.approx(-2.0)


@pytest.mark.parametrize(
    ("product", "elapsed_s", "expected"),
    [
        (Product.FCR_D_UP, 7.4, None),
        (Product.FCR_D_UP, 7.5, ("FCRD_UP.LIVE.REQ2.DP75", 0.86)),
        (Product.FCR_N, 59.0, None),
        (Product.FCR_N, 60.0, ("FCRN.LIVE.RAMP60", 0.63)),
        (Product.FFR, 0.5, None),
    ],
)
def test_checkpoints(
    product: Product, elapsed_s: float, expected: tuple[str, float] | None
) -> None:
    due = required_fraction_by(CURVES[product], elapsed_s)
    assert (None if due is None else (due.rule_id, due.min_fraction)) == expected


@pytest.mark.parametrize(("f_hz", "seconds"), [(49.7, 1.3), (49.6, 1.0), (49.5, 0.7)])
def test_ffr_options(f_hz: float, seconds: float) -> None:
    assert ffr_full_activation_s(f_hz) == seconds


def test_curve_directions_and_versions() -> None:
    assert CURVES[Product.FCR_D_UP].direction == 1
    assert CURVES[Product.FCR_D_DOWN].direction == -1
    assert CURVES[Product.FCR_N].direction == 0
    assert CURVES[Product.FFR].direction == 1
    assert CURVES[Product.FCR_N].rule_version == "TR-2025-03-28"
    assert not CURVES[Product.AFRR].frequency_activated


@pytest.mark.parametrize(
    "call",
    [
        lambda: curve_for(Product.NONE),
        lambda: ffr_full_activation_s(49.8),
        lambda: curve_fraction(CURVES[Product.AFRR], 50.0),
        lambda: activation_fraction(50.0, f_start_hz=50.0, f_full_hz=50.0),
        lambda: activation_fraction(float("nan"), f_start_hz=50.0, f_full_hz=49.9),
    ],
)
def test_bad_inputs_are_typed_errors(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidConfigError):
        call()
