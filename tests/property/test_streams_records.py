"""Hypothesis: step records round-trip through the real Avro schemas (fastavro)."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import CommandKind, Product, SiteMode
from contract.records import FleetState, OemState, ReserveArm, SiteCommand, SiteTelemetry
from streams.steps.ids import NAMESPACE, derived_id, uuid5_text

SCHEMAS = Path(__file__).resolve().parents[2] / "contract"
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
nonneg = st.floats(0.0, 1e6, allow_nan=False)
micros = st.integers(0, 4_000_000_000 * 1_000_000)
ids = st.text(min_size=1, max_size=20)
uuids = st.uuids().map(str)


def _round_trip(path: str, record: dict[str, Any]) -> dict[str, Any]:
    schema = fastavro.parse_schema(json.loads((SCHEMAS / path).read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    out = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(out, dict)
    return out


reserves = st.builds(
    ReserveArm,
    product=st.sampled_from(list(Product)),
    capacity_kw=nonneg,
    f_start_hz=finite,
    f_full_hz=finite,
    deadband_hz=nonneg,
    symmetric=st.booleans(),
)


@st.composite
def commands(draw: st.DrawFn) -> SiteCommand:
    kind = draw(st.sampled_from(list(CommandKind)))
    return SiteCommand(
        event_id=draw(uuids),
        event_time=draw(micros),
        site_id=draw(ids),
        command_id=draw(ids),
        kind=kind,
        valid_until=draw(micros),
        setpoint_id=draw(st.none() | ids),
        power_kw=draw(
            finite if kind in (CommandKind.SET_POWER, CommandKind.ORDER) else st.none() | finite
        ),
        reserve=draw(reserves if kind is CommandKind.ARM_RESERVE else st.none() | reserves),
        product=draw(
            st.sampled_from(list(Product))
            if kind in (CommandKind.DISARM_RESERVE, CommandKind.ORDER)
            else st.none() | st.sampled_from(list(Product))
        ),
        issued_by=draw(st.text(max_size=10)),
        ingest_time=draw(st.none() | micros),
    )


@settings(max_examples=200, deadline=None)
@given(commands())
def test_site_command_round_trip(command: SiteCommand) -> None:
    assert SiteCommand.from_record(_round_trip("site/SiteCommand.avsc", command.to_record())) == (
        command
    )


telemetry = st.builds(
    SiteTelemetry,
    event_id=uuids,
    event_time=micros,
    site_id=ids,
    oem=st.text(max_size=10),
    model=st.text(max_size=10),
    battery_power_kw=finite,
    soc_pct=st.floats(0.0, 100.0),
    grid_power_kw=finite,
    pv_power_kw=nonneg,
    load_kw=nonneg,
    headroom_up_kw=nonneg,
    headroom_down_kw=nonneg,
    max_discharge_kw=nonneg,
    max_charge_kw=nonneg,
    mode=st.sampled_from(list(SiteMode)),
    frequency_hz=st.none() | finite,
    capacity_kwh=st.none() | finite,
    setpoint_kw=st.none() | finite,
    active_command_id=st.none() | ids,
    reserve_armed=st.sampled_from(list(Product)),
    faulted=st.booleans(),
    ingest_time=st.none() | micros,
)


@settings(max_examples=200, deadline=None)
@given(telemetry)
def test_site_telemetry_round_trip(tel: SiteTelemetry) -> None:
    decoded = _round_trip("site/SiteTelemetry.avsc", tel.to_record())
    assert SiteTelemetry.from_record(decoded) == tel


oem_states = st.builds(
    OemState,
    oem=st.text(max_size=10),
    power_mw=finite,
    headroom_up_mw=finite,
    headroom_down_mw=finite,
    sites_online=st.integers(0, 2**31 - 1),
    sites_faulted=st.integers(0, 2**31 - 1),
)


@st.composite
def fleet_states(draw: st.DrawFn) -> FleetState:
    start = draw(micros)
    return FleetState(
        event_id=draw(uuids),
        event_time=draw(micros),
        fleet_id=draw(ids),
        window_start=start,
        window_end=start + draw(st.integers(1, 10**9)),
        window_s=draw(st.sampled_from([1, 10])),
        total_power_mw=draw(finite),
        headroom_up_mw=draw(finite),
        headroom_down_mw=draw(finite),
        sites_online=draw(st.integers(0, 2**31 - 1)),
        sites_faulted=draw(st.integers(0, 2**31 - 1)),
        mean_frequency_hz=draw(st.none() | finite),
        per_oem=tuple(draw(st.lists(oem_states, max_size=4))),
    )


@settings(max_examples=200, deadline=None)
@given(fleet_states())
def test_fleet_state_round_trip(state: FleetState) -> None:
    assert FleetState.from_record(_round_trip("fleet/FleetState.avsc", state.to_record())) == state


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=4))
def test_derived_ids_are_rfc4122_uuid5(name: str, parts: list[str | int]) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(NAMESPACE, name))
    assert derived_id(*parts) == str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))
