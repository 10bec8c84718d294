"""Hypothesis properties and a table of the sticky re-split (``allocator.split_sticky``): a
site keeps its earlier share as far as its capacity still holds it, only the rest moves (to
the capacity left beyond the kept shares), never above a site's capacity, and the total is
what a fresh split would allocate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.steps.allocator import split_proportional, split_sticky
from streams.steps.availability import AllocatorConfig

CONFIG = AllocatorConfig()
SCALE = CONFIG.scale

# (target, capacities, earlier shares) -> units per site (1 unit = 1 W)
CASES = [
    ("nothing changed", 3.0, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0], [1000, 1000, 1000]),
    ("an overridden home gives up all", 3.0, [0.0, 2.0, 2.0], [1.0, 1.0, 1.0], [0, 1500, 1500]),
    (
        "a clamped home keeps what it can, the rest by room left",
        3.0,
        [0.4, 3.0, 1.5],
        [1.0, 1.0, 1.0],
        [400, 1480, 1120],
    ),
    (
        "more than the others can take: short",
        3.0,
        [0.0, 1.2, 1.0],
        [1.0, 1.0, 1.0],
        [0, 1200, 1000],
    ),
    ("an order down keeps its sign", -3.0, [0.0, 2.0, 2.0], [-1.0, -1.0, -1.0], [0, 1500, 1500]),
    ("a share of the other sign counts as none", 2.0, [2.0, 2.0], [-1.0, 1.0], [667, 1333]),
    (
        "the rest goes by the room left beyond the kept shares",
        3.0,
        [2.0, 2.0, 2.0],
        [1.0, 1.0, 0.0],
        [1250, 1250, 500],
    ),
]


@pytest.mark.parametrize(
    ("target", "caps", "kept", "units"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_sticky_split(
    target: float, caps: list[float], kept: list[float], units: list[int]
) -> None:
    got, total = split_sticky(target, caps, kept, CONFIG)
    assert got == units
    assert total == sum(units)


kw = st.floats(0.0, 10.0, allow_nan=False)


@given(
    st.floats(-30.0, 30.0, allow_nan=False),
    st.lists(st.tuples(kw, st.floats(-10.0, 10.0, allow_nan=False)), min_size=1, max_size=12),
)
def test_sticky_split_properties(target: float, sites: list[tuple[float, float]]) -> None:
    caps = [c for c, _ in sites]
    kept = [k for _, k in sites]
    units, total = split_sticky(target, caps, kept, CONFIG)
    fresh_units, fresh_total = split_proportional(target, caps, CONFIG)
    assert total == sum(units) == fresh_total  # the same total as a fresh split
    cap_units = [int(c * SCALE + 1e-7) for c in caps]
    sign = -1.0 if target < 0 else 1.0
    kept_units = [
        min(int(abs(k) * SCALE + 1e-7), c) if sign * k > 0 else 0
        for k, c in zip(kept, cap_units, strict=True)
    ]
    assert all(0 <= u <= c for u, c in zip(units, cap_units, strict=True))
    if sum(kept_units) <= int(abs(target) * SCALE + 1e-7):
        # every site keeps what it can still hold of its share; only the rest moved
        assert all(u >= k for u, k in zip(units, kept_units, strict=True))
    else:  # more kept than asked (not the same request): never above a kept share
        assert all(u <= k for u, k in zip(units, kept_units, strict=True))
    assert len(fresh_units) == len(units)
