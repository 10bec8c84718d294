"""``streams.steps.telemetry_columns`` against the per-record definitions it vectorises.

- ``plainly_valid`` on columns == ``telemetry_plainly_valid`` on each raw-codec record, for
  schema-drawn records with the checked fields pushed to their edges (NaN, infinities,
  sums that overflow, negative values, soc outside 0..100, empty site ids);
- the samples of fast rows == ``sample_of_plain`` of the records;
- ``latest_per_site`` == ``SiteBook.update_plain_telemetry`` called row by row (which rows
  the book keeps, how many updates it counts), over the whole timestamp range (the packed
  key and its fallback for times too far apart) and with times already in the book.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.columnar import ColumnarDecoder
from contract.testing.strategies import records
from streams.steps.fleet_aggregation import sample_of_plain
from streams.steps.plain import telemetry_plainly_valid
from streams.steps.sitebook import SiteBook
from streams.steps.telemetry_columns import latest_per_site, telemetry_columns

REGISTRY = SchemaRegistry.load()
SCHEMA = REGISTRY.current("SiteTelemetry")
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)
DECODER = ColumnarDecoder(SCHEMA.raw, SCHEMA.fingerprint)
MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)

edgy = st.one_of(
    st.floats(-200.0, 200.0),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 100.0, 1e308, -1e308]),
)
CHECKED = [
    "soc_pct",
    "battery_power_kw",
    "grid_power_kw",
    "pv_power_kw",
    "load_kw",
    "headroom_up_kw",
    "headroom_down_kw",
    "max_discharge_kw",
    "max_charge_kw",
]
telemetry = st.builds(
    lambda rec, values, optional, site: (
        rec
        | dict(zip(CHECKED, values, strict=True))
        | dict(zip(["frequency_hz", "capacity_kwh", "setpoint_kw"], optional, strict=True))
        | ({"site_id": site} if site is not None else {})
    ),
    records(SCHEMA.raw),
    st.lists(st.one_of(st.floats(0.0, 100.0), edgy), min_size=9, max_size=9),
    st.lists(st.none() | edgy, min_size=3, max_size=3),
    st.none() | st.sampled_from(["", "site-7", "sïte-ü"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(telemetry, min_size=1, max_size=20))
def test_column_checks_equal_the_record_checks(drawn: list[dict[str, Any]]) -> None:
    values = [LOGICAL.encode("SiteTelemetry", r) for r in drawn]
    raw = [RAW.decode(v).record for v in values]
    columns = telemetry_columns(DECODER.decode(values))
    assert columns.fast.tolist() == [telemetry_plainly_valid(r) for r in raw]
    rows = np.flatnonzero(columns.fast)
    samples = columns.samples
    names = samples.site_names
    assert [names[c] for c in samples.site[rows].tolist()] == [raw[i]["site_id"] for i in rows]
    got = samples.samples(rows)
    assert repr(got) == repr([sample_of_plain(raw[i]) for i in rows.tolist()])  # NaN-safe


def _by_the_book(
    sites: list[int], times: list[int], seen: dict[str, int]
) -> tuple[list[int], int, dict[str, int]]:
    book = SiteBook()
    for name, t in seen.items():
        book.update_plain_telemetry(name, t, {"row": -1})
    version = book.version
    for row, (site, t) in enumerate(zip(sites, times, strict=True)):
        book.update_plain_telemetry(f"s{site}", t, {"row": row})
    kept = sorted(r["row"] for r in book._plain.values() if r["row"] >= 0)  # the rows it holds
    return kept, book.version - version, book.last_seen


times_anywhere = st.one_of(
    st.integers(*MICROS), st.integers(0, 5), st.sampled_from([MICROS[0], MICROS[1]])
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 24), times_anywhere), min_size=1, max_size=60),
    st.dictionaries(st.integers(0, 24).map(lambda s: f"s{s}"), times_anywhere, max_size=8),
)
def test_latest_per_site_is_the_books_update(
    rows: list[tuple[int, int]], seen: dict[str, int]
) -> None:
    sites = [s for s, _ in rows]
    times = [t for _, t in rows]
    names = [f"s{i}" for i in range(25)]
    latest, updates = latest_per_site(
        np.array(sites, np.int64), np.array(times, np.int64), names, seen
    )
    kept, version, _ = _by_the_book(sites, times, seen)
    assert (latest.tolist(), updates) == (kept, version)


@pytest.mark.parametrize(
    ("sites", "times", "seen", "kept", "updates"),
    [
        ([0, 0, 0], [5, 5, 4], {}, [1], 2),  # a tie goes to the later row; older ignored
        ([0, 1, 0], [1, 9, 2], {"s0": 3}, [1], 1),  # the book's newer time wins
        ([1, 0, 1], [7, 7, 7], {"s1": 7}, [1, 2], 3),  # equal to the book's: kept
        ([0, 1], [MICROS[0], MICROS[1]], {}, [0, 1], 2),  # centuries apart
    ],
)
def test_latest_per_site_table(
    sites: list[int], times: list[int], seen: dict[str, int], kept: list[int], updates: int
) -> None:
    names = [f"s{i}" for i in range(max(sites) + 1)]
    latest, count = latest_per_site(
        np.array(sites, np.int64), np.array(times, np.int64), names, seen
    )
    assert (latest.tolist(), count) == (kept, updates)
