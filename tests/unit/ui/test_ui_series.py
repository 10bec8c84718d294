"""A site's sample ring (flowerhub.ui.series.SiteHistory): growth, overwrite, since."""

from __future__ import annotations

import math

import pytest

from flowerhub.ui.series import SITE_FIELDS, SiteHistory, finite


def sample(v: float) -> tuple[float | None, ...]:
    return (v, None, 0.0, 50.0, 0.0)


def test_grows_then_overwrites_the_oldest() -> None:
    ring = SiteHistory(capacity=40)
    for t in range(100):
        ring.append(t, sample(float(t)))
    got = ring.since(None)
    assert got["t"] == list(range(60, 100))
    assert got["power_kw"] == [float(t) for t in range(60, 100)]
    assert got["setpoint_kw"] == [None] * 40
    assert set(got) == {"t", *SITE_FIELDS}
    assert ring.last_time == 99


@pytest.mark.parametrize(
    ("after", "not_before", "expected"),
    [
        (None, None, [0, 1, 2, 3, 4]),
        (2, None, [3, 4]),
        (None, 3, [3, 4]),
        (0, 2, [2, 3, 4]),
        (4, None, []),
    ],
)
def test_since(after: int | None, not_before: int | None, expected: list[int]) -> None:
    ring = SiteHistory(capacity=8)
    for t in range(5):
        ring.append(t, sample(1.0))
    assert ring.since(after, not_before)["t"] == expected


def test_empty_ring() -> None:
    ring = SiteHistory(capacity=3)
    assert ring.last_time is None
    assert ring.since(None)["t"] == []
    with pytest.raises(ValueError, match="capacity"):
        SiteHistory(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (2.5, 2.5),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (None, None),
        (True, None),
        ("3", None),
    ],
)
def test_finite(value: object, expected: float | None) -> None:
    assert finite(value) == expected


def test_values_beyond_float32_are_missing_not_infinite() -> None:
    ring = SiteHistory(capacity=2)
    ring.append(1, (1e300, -1e300, 3.4e38, 50.0, 0.0))
    got = ring.since(None)
    assert (got["power_kw"], got["setpoint_kw"], got["soc_pct"]) == ([None], [None], [50.0])
    assert got["baseline_kw"][0] is not None
