"""The aggregator's column-wise activation curves against ``contract.products``' scalar ones,
and the per-product window figures against a per-site reckoning."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import Product
from contract.products import CURVES, curve_fraction
from streams.steps.expected import (
    ARMED_COLUMNS,
    ORDER_COLUMNS,
    activation_fractions,
    product_states,
)

frequencies = st.floats(48.0, 52.0, allow_nan=False) | st.sampled_from(
    [49.9, 49.5, 50.1, 50.5, 50.0, 49.7, 49.6]
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ARMED_COLUMNS), st.lists(frequencies, min_size=1, max_size=20))
def test_activation_fractions_equal_the_curve(product: Product, freqs: list[float]) -> None:
    curve = CURVES[product]
    got = activation_fractions(curve, np.array(freqs, np.float64)).tolist()
    assert got == [curve_fraction(curve, f) for f in freqs]


def test_an_unknown_frequency_activates_nothing() -> None:
    for product in ARMED_COLUMNS:
        got = activation_fractions(CURVES[product], np.array([math.nan, 49.0]))
        assert got[0] == 0.0


site = st.tuples(
    st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.5]), min_size=4, max_size=4),
    st.lists(st.sampled_from([0.0, 0.0, -1.5, 2.0]), min_size=2, max_size=2),
    st.none() | frequencies,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(site, max_size=12))
def test_product_states_sum_each_sites_capacity_and_response(
    sites: list[tuple[list[float], list[float], float | None]],
) -> None:
    armed = np.array([s[0] for s in sites], np.float64).reshape(len(sites), 4)
    orders = np.array([s[1] for s in sites], np.float64).reshape(len(sites), 2)
    freqs = np.array([math.nan if s[2] is None else s[2] for s in sites], np.float64)
    known = [s[2] for s in sites if s[2] is not None]
    mean = math.fsum(known) / len(known) if known else None
    states = {p.product: p for p in product_states(armed, orders, freqs, mean)}
    for k, product in enumerate(ARMED_COLUMNS):
        capacity = [s[0][k] for s in sites]
        if not any(c > 0 for c in capacity):
            assert product not in states
            continue
        expected = []
        for caps, _, f in sites:
            at = f if f is not None else mean
            expected.append(0.0 if at is None else caps[k] * curve_fraction(CURVES[product], at))
        assert states[product].armed_mw == math.fsum(capacity) / 1000.0
        assert math.isclose(
            states[product].expected_mw, math.fsum(expected) / 1000.0, abs_tol=1e-12
        )
    for k, product in enumerate(ORDER_COLUMNS):
        changes = [s[1][k] for s in sites]
        if not any(changes):
            assert product not in states
            continue
        assert states[product].expected_mw == math.fsum(changes) / 1000.0
        assert states[product].armed_mw == math.fsum(abs(c) for c in changes) / 1000.0
