"""The telemetry agent's fast path against the full ``SiteTelemetry.from_record`` path.

Records are generated from the SiteTelemetry schema (any Avro-valid values: NaN, infinities,
negative headroom, soc outside 0..100, empty site ids...), encoded, and decoded by the raw
codec, as the agent sees them. Properties:

- ``telemetry_plainly_valid`` never accepts a record ``from_record`` rejects;
- when it accepts, the fast sample equals the sample of the full path;
- the agent's ``add`` gives the same FleetStates, book and dead-letter decisions whether it
  is fed raw-codec records (fast path) or default-codec records (datetimes: full path).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.errors import InvalidRecordError
from contract.records import SiteTelemetry
from contract.testing.strategies import records, site_telemetry_example
from streams.app import settings_with
from streams.steps.fleet_aggregation import sample_of, sample_of_plain
from streams.steps.plain import telemetry_plainly_valid
from streams.steps.sitebook import SiteBook
from streams.steps.telemetry_step import TelemetryAggregator

REGISTRY = SchemaRegistry.load()
SCHEMA = REGISTRY.current("SiteTelemetry").raw
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)
S = 1_000_000
T0 = 1_700_000_000 * S

# Schema-valid records, with the fields the semantic checks look at pushed to their edges.
edgy_floats = st.one_of(
    st.floats(-200.0, 200.0),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 100.0, 1e308]),
)
telemetry = st.builds(
    lambda rec, soc, up, pv, freq, site: (
        rec
        | {"soc_pct": soc, "headroom_up_kw": up, "pv_power_kw": pv, "frequency_hz": freq}
        | ({"site_id": site} if site is not None else {})
    ),
    records(SCHEMA),
    edgy_floats,
    edgy_floats,
    edgy_floats,
    st.none() | edgy_floats,
    st.none() | st.sampled_from(["", "site-7"]),
)


def _raw(record: dict[str, Any]) -> dict[str, Any]:
    return RAW.decode(LOGICAL.encode("SiteTelemetry", record)).record


@settings(max_examples=400, deadline=None)
@given(telemetry)
def test_fast_check_never_accepts_what_the_full_path_rejects(record: dict[str, Any]) -> None:
    rec = _raw(record)
    try:
        full = SiteTelemetry.from_record(rec)
    except InvalidRecordError:
        assert not telemetry_plainly_valid(rec)
        return
    if telemetry_plainly_valid(rec):
        assert repr(sample_of_plain(rec)) == repr(sample_of(full))  # repr: NaN-safe
    else:  # only a sum too large for a double may send a valid record the slow way
        magnitudes = [abs(v) for v in _floats(rec)]
        assert not math.isfinite(sum(magnitudes))


def _floats(rec: dict[str, Any]) -> list[float]:
    names = [k for k, v in rec.items() if isinstance(v, float)]
    assert "soc_pct" in names
    return [rec[k] for k in names]


@pytest.mark.parametrize(
    "spelling",
    [
        {"event_time": None},  # missing/None: not for the fast path
        {"mode": "WARP_DRIVE"},
        {"reserve_armed": "FCR_X"},
        {"soc_pct": "50"},
    ],
)
def test_odd_spellings_fall_back(spelling: dict[str, Any]) -> None:
    rec = _raw(_valid()) | spelling
    assert not telemetry_plainly_valid(rec)
    with pytest.raises(InvalidRecordError):
        SiteTelemetry.from_record(rec)


def _valid(**fields: Any) -> dict[str, Any]:
    return site_telemetry_example(**({"event_time": T0} | fields))


SETTINGS = settings_with(bootstrap="localhost:9092", app_id="prop-plain-telemetry")


def _feed(agent: TelemetryAggregator, records: list[dict[str, Any]]) -> list[Any]:
    """The FleetState records each event closed, or its error type."""
    out: list[Any] = []
    for rec in records:
        try:
            out.append([s.to_record() for s in agent.add(rec)])
        except InvalidRecordError as exc:
            out.append(type(exc).__name__)
    return out


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # site
            st.integers(0, 25 * S),  # event time offset
            st.floats(-10, 10),
            st.sampled_from([50.0, 130.0, float("nan")]),  # soc: ok, out of range, NaN
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_agent_fast_and_full_paths_agree(rows: list[tuple[int, int, float, float, bool]]) -> None:
    records = [
        _valid(
            site_id=f"site-{site}",
            event_time=T0 + offset,
            battery_power_kw=power,
            soc_pct=soc,
            faulted=faulted,
        )
        for site, offset, power, soc, faulted in rows
    ]
    fast = TelemetryAggregator(SETTINGS, SiteBook())
    full = TelemetryAggregator(SETTINGS, SiteBook())
    fast_out = _feed(fast, [_raw(r) for r in records])
    full_out = _feed(
        full, [LOGICAL.decode(LOGICAL.encode("SiteTelemetry", r)).record for r in records]
    )
    assert repr(fast_out) == repr(full_out)
    assert fast.book.last_seen == full.book.last_seen
    assert fast.book.telemetry == full.book.telemetry
    assert fast.book.version == full.book.version
    assert [w.late_events for w in fast.windows] == [w.late_events for w in full.windows]
