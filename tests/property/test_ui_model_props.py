"""The UI's view model never raises on a valid event and always yields strict JSON.

For every event the UI reads, records drawn from the schema (``contract.testing.strategies``) are
encoded, decoded as the feed does (raw codec) and folded; every view's payload must then
serialise with ``allow_nan=False`` (what the server sends). Telemetry folded column-wise
equals telemetry folded value by value.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import SchemaRegistry
from contract.codec import decode_raw, encode
from contract.testing.strategies import records
from flowerhub.ui.fold import Folder
from flowerhub.ui.model import ViewModel
from flowerhub.ui.views import VIEWS, Cursor

REGISTRY = SchemaRegistry.load()
UI_EVENTS = (
    "SiteTelemetry",
    "DeviceStatus",
    "SiteFault",
    "CommandResult",
    "FleetState",
    "ComplianceVerdict",
    "MarketActivation",
    "ReserveAssignment",
)
EVENTS = st.one_of(
    [records(REGISTRY.current(n).raw).map(lambda r, n=n: (n, r)) for n in UI_EVENTS]  # type: ignore[misc]
)


def _payloads(m: ViewModel) -> list[dict[str, Any]]:
    out = []
    site = next(iter(m.sites), "none")
    activation = next(iter(m.acts.by_id), None)
    for name, view in VIEWS.items():
        query = {"site": site, "activation": activation or ""}
        payload, cursor = view(m, Cursor(), query)
        out.append(payload)
        again, _ = view(m, cursor, query)
        out.append(again)
        del name
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENTS, max_size=12))
def test_any_valid_events_fold_into_strict_json(events: list[tuple[str, dict[str, Any]]]) -> None:
    m = ViewModel(window_s=900)
    for name, record in events:
        decoded = decode_raw(encode(name, record))
        m.apply(decoded.name, decoded.record)
    for payload in _payloads(m):
        json.dumps(payload, allow_nan=False)
    m.products()
    m.site_counts()


TELEMETRY = records(REGISTRY.current("SiteTelemetry").raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TELEMETRY, min_size=1, max_size=8))
def test_columnar_telemetry_equals_record_by_record(rows: list[dict[str, Any]]) -> None:
    values = [encode("SiteTelemetry", r) for r in rows]
    batched, single = ViewModel(), ViewModel()
    Folder(batched, columnar_from=1).fold("site.telemetry", values)
    folder = Folder(single)
    for value in values:
        folder.fold("site.telemetry", [value])
    assert batched.stats.skipped == single.stats.skipped
    assert {k: s.row() | {"version": 0} for k, s in batched.sites.items()} == {
        k: s.row() | {"version": 0} for k, s in single.sites.items()
    }
