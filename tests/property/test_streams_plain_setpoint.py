"""The setpoint filter's fast path (``setpoint_of_plain``) against ``SiteSetpoint.from_record``.

Records are generated from the SiteSetpoint schema (any Avro-valid values: NaN power, empty
ids, every kind with or without its payload), encoded, and decoded by the raw codec as the
agent sees them; plus hand-made odd spellings. Properties: the fast path never accepts a
record ``from_record`` rejects (it raises the same error), and otherwise gives the same
SiteSetpoint.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.errors import InvalidRecordError
from contract.records import SiteSetpoint
from contract.testing.strategies import records
from streams.steps.plain import setpoint_of_plain

REGISTRY = SchemaRegistry.load()
SCHEMA = REGISTRY.current("SiteSetpoint").raw
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)
S = 1_000_000
T0 = 1_700_000_000 * S
ARM = {
    "product": "FCR_D_UP",
    "capacity_kw": 2.5,
    "f_start_hz": 49.9,
    "f_full_hz": 49.5,
    "deadband_hz": 0.0,
    "symmetric": False,
}

setpoints = st.builds(
    lambda rec, power, site, setpoint_id: (
        rec
        | {"power_kw": power}
        | ({"site_id": site} if site is not None else {})
        | ({"setpoint_id": setpoint_id} if setpoint_id is not None else {})
    ),
    records(SCHEMA),
    st.none() | st.floats(-50.0, 50.0) | st.sampled_from([float("nan"), float("inf"), -0.0, 1e308]),
    st.none() | st.sampled_from(["", "site-7"]),
    st.none() | st.sampled_from(["", "sp-1"]),
)


def _outcome(fn: Any, rec: dict[str, Any]) -> str:
    try:
        return repr(fn(rec))  # repr: NaN-safe equality
    except InvalidRecordError as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=400, deadline=None)
@given(setpoints)
def test_fast_path_equals_from_record(record: dict[str, Any]) -> None:
    rec = RAW.decode(LOGICAL.encode("SiteSetpoint", record)).record
    assert _outcome(setpoint_of_plain, rec) == _outcome(SiteSetpoint.from_record, rec)


def _valid(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
        "event_time": T0,
        "ingest_time": None,
        "site_id": "site-1",
        "setpoint_id": "sp-1",
        "source_id": None,
        "kind": "SET_POWER",
        "power_kw": 2.5,
        "reserve": None,
        "valid_until": T0 + 60 * S,
    }
    return base | fields


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ({}, "plain"),
        ({"kind": "STOP", "power_kw": None}, "plain"),
        ({"event_id": "9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F"}, "normalised"),  # upper case
        ({"power_kw": 3}, "converted"),  # an int: from_record makes it a float
        ({"event_time": None}, "InvalidRecordError"),
        ({"kind": "WARP"}, "InvalidRecordError"),
        ({"kind": "SET_POWER", "power_kw": None}, "InvalidRecordError"),
        ({"kind": "ARM_RESERVE"}, "InvalidRecordError"),  # no reserve
        ({"site_id": ""}, "InvalidRecordError"),
        ({"power_kw": float("nan")}, "InvalidRecordError"),
        ({"kind": "ARM_RESERVE", "power_kw": None, "reserve": ARM, "product": None}, "plain"),
        ({"kind": "ORDER", "power_kw": -1.5, "product": "MFRR", "reserve": None}, "plain"),
        ({"kind": "DISARM_RESERVE", "power_kw": None, "product": "FCR_N"}, "plain"),
        (
            {"kind": "ARM_RESERVE", "reserve": ARM | {"capacity_kw": 2}, "product": None},
            "converted",
        ),
        ({"kind": "ARM_RESERVE", "reserve": ARM | {"capacity_kw": -1.0}}, "InvalidRecordError"),
        ({"kind": "ARM_RESERVE", "reserve": ARM | {"f_full_hz": math.inf}}, "InvalidRecordError"),
        ({"kind": "ARM_RESERVE", "reserve": ARM | {"product": "FCR_X"}}, "InvalidRecordError"),
        ({"kind": "ARM_RESERVE", "reserve": {"product": "FCR_N"}}, "InvalidRecordError"),
        ({"kind": "ORDER", "power_kw": 1.0, "product": None}, "InvalidRecordError"),
        ({"kind": "ORDER", "power_kw": None, "product": "AFRR"}, "InvalidRecordError"),
        ({"kind": "DISARM_RESERVE", "power_kw": None, "product": "FCR_Z"}, "InvalidRecordError"),
    ],
)
def test_odd_spellings_take_the_full_path(spelling: dict[str, Any], expected: str) -> None:
    rec = _valid(**spelling)
    outcome = _outcome(setpoint_of_plain, rec)
    assert outcome == _outcome(SiteSetpoint.from_record, rec)
    if expected == "InvalidRecordError":
        assert outcome.startswith("InvalidRecordError")
    else:
        sp = setpoint_of_plain(rec)
        assert sp.event_id == "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
        assert sp.power_kw is None or type(sp.power_kw) is float
        assert sp.site_id == "site-1"
