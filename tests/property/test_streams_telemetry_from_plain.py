"""``SiteTelemetry.from_plain`` (the site book's unchecked build) against ``from_record``.

For every schema-valid SiteTelemetry (values pushed to the edges the semantic checks look at)
decoded by the raw codec, as the telemetry step sees it: when ``telemetry_plainly_valid``
accepts the record, ``from_plain`` builds exactly what ``from_record`` builds.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.records import SiteTelemetry
from contract.testing.strategies import records
from streams.steps.plain import telemetry_of_plain_columns, telemetry_plainly_valid
from streams.testing.agents import telemetry_record

REGISTRY = SchemaRegistry.load()
SCHEMA = REGISTRY.current("SiteTelemetry").raw
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)

edgy = st.one_of(
    st.floats(-200.0, 200.0),
    st.sampled_from([float("nan"), float("inf"), -0.0, 0.0, 100.0]),
)
telemetry = st.builds(
    lambda rec, soc, up, freq: rec | {"soc_pct": soc, "headroom_up_kw": up, "frequency_hz": freq},
    records(SCHEMA),
    edgy,
    edgy,
    st.none() | edgy,
)


def _raw(record: dict[str, Any]) -> dict[str, Any]:
    return RAW.decode(LOGICAL.encode("SiteTelemetry", record)).record


@settings(max_examples=300, deadline=None)
@given(telemetry)
def test_from_plain_builds_what_from_record_builds(record: dict[str, Any]) -> None:
    rec = _raw(record)
    if not telemetry_plainly_valid(rec):
        return
    plain = SiteTelemetry.from_plain(rec)
    assert repr(plain) == repr(SiteTelemetry.from_record(rec))  # repr: NaN-safe
    assert type(plain.mode) is type(SiteTelemetry.from_record(rec).mode)


def test_a_typical_record_is_built_the_same_both_ways() -> None:
    rec = _raw(telemetry_record("site-1", 1_700_000_000_000_000, oem="saj", faulted=True))
    assert telemetry_plainly_valid(rec)
    assert SiteTelemetry.from_plain(rec) == SiteTelemetry.from_record(rec)


@settings(max_examples=100, deadline=None)
@given(st.lists(telemetry, max_size=8))
def test_columns_build_what_from_plain_builds(batch: list[dict[str, Any]]) -> None:
    plain = [rec for rec in map(_raw, batch) if telemetry_plainly_valid(rec)]
    names = SiteTelemetry.__dataclass_fields__
    columns = {name: [rec[name] for rec in plain] for name in names}
    built = telemetry_of_plain_columns(columns)
    assert repr(built) == repr([SiteTelemetry.from_plain(rec) for rec in plain])
