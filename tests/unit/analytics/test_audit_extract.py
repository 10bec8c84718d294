"""Pure parts of the event-log extraction: test types, frequency events, canonical form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analytics.audit.extract import (
    AuditInputError,
    FleetFrame,
    activation_test_type,
    detect_frequency_events,
)
from analytics.audit.series import canonical, canonical_values
from analytics.svkcsv import read_csv, write_csv
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import MARKET_PRODUCTS


@pytest.mark.parametrize(
    ("kind", "product", "name", "want"),
    [
        ("TEST", Product.FCR_D_UP, "fcrd_up_ramp", (TestType.RAMP, None)),
        ("TEST", Product.FCR_D_DOWN, "FCRD_DOWN_RAMP", (TestType.RAMP, None)),
        ("TEST", Product.FCR_N, "fcrn_step", (TestType.STEP, None)),
        ("TEST", Product.FCR_N, "fcrn_sine_40", (TestType.SINE, 40)),
        ("TEST", Product.FCR_D_UP, "fcrd_up_sine90", (TestType.SINE, 90)),
        ("TEST", Product.FFR, None, (TestType.ACTIVATION, None)),
        ("TEST", Product.MFRR, "mfrr_prequal", (TestType.ACTIVATION, None)),
        ("ORDER", Product.MFRR, None, (TestType.ACTIVATION, None)),
        ("ORDER", Product.AFRR, None, (TestType.ACTIVATION, None)),
        ("FREQUENCY_EVENT", Product.FFR, None, (TestType.ACTIVATION, None)),
        ("FREQUENCY_EVENT", Product.FCR_D_UP, None, (TestType.OPERATION, None)),
        ("FREQUENCY_EVENT", Product.FCR_N, None, (TestType.OPERATION, None)),
    ],
)
def test_test_type_from_kind_and_name(
    kind: str, product: Product, name: str | None, want: tuple[TestType, int | None]
) -> None:
    assert activation_test_type(kind, product, name) == want


def test_fcr_test_without_a_known_sequence_name_is_an_error() -> None:
    with pytest.raises(AuditInputError, match="neither ramp, step nor sine"):
        activation_test_type("TEST", Product.FCR_N, "something")


def _frame(freq: list[float]) -> FleetFrame:
    n = len(freq)
    return FleetFrame(
        bucket_us=1_000_000,
        t_us=np.arange(n, dtype=np.int64) * 1_000_000,
        power_mw=np.zeros(n),
        freq_hz=np.array(freq),
        samples=np.ones(n, dtype=np.int64),
    )


@pytest.mark.parametrize(
    ("freq", "covered", "want"),
    [
        ([50.0] * 10, [], []),
        ([50.0, 49.8, 49.8, 50.0, 50.0], [], [(Product.FCR_D_UP, 1)]),
        ([50.0, 50.2, 50.2, 50.0], [], [(Product.FCR_D_DOWN, 1)]),
        ([50.0, 49.6, 49.6, 50.0], [], [(Product.FCR_D_UP, 1), (Product.FFR, 1)]),
        ([50.0, 49.8, 50.0, 49.8, 49.8], [], [(Product.FCR_D_UP, 1), (Product.FCR_D_UP, 3)]),
        ([50.0, 49.8, 49.8, 50.0], [(0, 5_000_000)], []),  # inside a logged activation
        ([49.9, 49.9, 50.0], [], []),  # at the band edge: no activation
    ],
)
def test_detect_frequency_events(
    freq: list[float], covered: list[tuple[int, int]], want: list[tuple[Product, int]]
) -> None:
    found = detect_frequency_events(_frame(freq), covered, set(MARKET_PRODUCTS), post_s=1.0)
    got = [(a.product, int(a.start.astype(np.int64)) // 1_000_000) for a in found]
    assert got == want
    assert all(a.detected and a.kind == "FREQUENCY_EVENT" for a in found)


def test_detect_only_the_wanted_products() -> None:
    found = detect_frequency_events(_frame([50.0, 49.6, 49.6, 50.0]), [], {Product.FFR})
    assert [a.product for a in found] == [Product.FFR]


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-100.0, max_value=100.0, allow_nan=False), min_size=2, max_size=30
    ),
    offset_us=st.integers(min_value=0, max_value=999_999),
)
@example(values=[0.0] * 30, offset_us=24_500)  # a half millisecond: one 1,001 ms step once
@example(values=[1.0] * 30, offset_us=500)
def test_canonical_series_round_trips_through_the_csv_writer_exactly(
    values: list[float], offset_us: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    n = len(values)
    series = Series(
        t=np.arange(n, dtype=np.float64),
        power_mw=np.array(values),
        grid_freq_hz=50.0 + np.array(values) / 1000.0,
        start=np.datetime64("2026-03-01T12:00:00", "us") + np.timedelta64(offset_us, "us"),
    )
    c = canonical(series)
    path = write_csv(
        c,
        tmp_path_factory.mktemp("rt"),
        resource="R",
        product=Product.FCR_N,
        test_type=TestType.OPERATION,
        area="SE3",
    )
    back = read_csv(path).series
    assert back.start == c.start
    assert back.t.tolist() == c.t.tolist()
    assert back.power_mw.tolist() == c.power_mw.tolist()
    assert back.grid_freq_hz is not None
    assert c.grid_freq_hz is not None
    assert back.grid_freq_hz.tolist() == c.grid_freq_hz.tolist()
    assert canonical_values(c.power_mw).tolist() == c.power_mw.tolist()


@pytest.mark.parametrize(
    ("start_s", "end_s", "first_on", "last_on"),
    [
        (40.0, 70.0, 40, 69),  # on a bucket edge: from that bucket
        (40.2, 70.0, 40, 69),  # inside bucket [40, 41): that bucket already holds responses
        (40.999, 70.5, 40, 70),
    ],
)
def test_an_order_is_in_force_in_every_bucket_it_overlaps(
    start_s: float, end_s: float, first_on: int, last_on: int
) -> None:
    """A bucket holds the sites' last samples before its end: the one an order starts in is
    no part of the pre-order level (the demo measured responses there, read 0.2-0.8 s after
    the start), and full activation is counted from its start."""
    from analytics.audit.extract import Activation
    from analytics.audit.series import fleet_series

    frame = _frame([50.0] * 120)
    t0 = np.datetime64(0, "us")
    act = Activation(
        activation_id="o",
        product=Product.MFRR,
        test_type=TestType.ACTIVATION,
        kind="ORDER",
        start=t0 + np.timedelta64(round(start_s * 1e6), "us"),
        end=t0 + np.timedelta64(round(end_s * 1e6), "us"),
        requested_mw=0.003,
    )
    series = fleet_series(frame, act, interval_s=1.0, capacity_mw=None, pre_s=30.0)
    assert series.requested_mw is not None
    assert series.start is not None
    on = np.flatnonzero(series.requested_mw != 0.0)
    origin = int(series.start.astype(np.int64)) // 1_000_000
    assert (origin + int(series.t[on[0]]), origin + int(series.t[on[-1]])) == (first_on, last_on)
