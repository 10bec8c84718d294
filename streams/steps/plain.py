"""Hot paths over plain records (as the raw codec decodes them): checks and constructors that
skip what the Avro types already guarantee.

The typed records themselves (``contract.records``) are generated from the schemas; these
helpers only speed up the two bulk inputs (telemetry and site setpoints). Each is checked
against the records' own ``from_record`` by hypothesis tests (tests/property/
test_streams_plain_*.py), so a schema change that they do not follow fails there.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from typing import Any

from contract.codec import raw_codec
from contract.enums import CommandKind, Product, SiteMode
from contract.errors import InvalidEventError
from contract.records import ReserveArm, SiteSetpoint, SiteTelemetry

_isfinite = math.isfinite
_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch
_COMMAND_KINDS = {k.value: k for k in CommandKind}
_PRODUCT_OF = {p.value: p for p in Product}
_SET_POWER, _ARM = CommandKind.SET_POWER, CommandKind.ARM_RESERVE
_DISARM, _ORDER = CommandKind.DISARM_RESERVE, CommandKind.ORDER


def _plain_reserve(reserve: Any) -> ReserveArm | None:
    """``ReserveArm.from_record`` of a raw-codec reserve whose fields are all plainly valid
    (finite floats, capacity and dead band >= 0, a known product); None otherwise."""
    try:
        capacity, start = reserve["capacity_kw"], reserve["f_start_hz"]
        full, deadband = reserve["f_full_hz"], reserve["deadband_hz"]
        symmetric, product = reserve["symmetric"], _PRODUCT_OF[reserve["product"]]
    except (KeyError, TypeError):
        return None
    if not (
        type(capacity) is float
        and type(start) is float
        and type(full) is float
        and type(deadband) is float
        and type(symmetric) is bool
        and _isfinite(capacity + start + full + deadband)
        and capacity >= 0.0
        and deadband >= 0.0
    ):
        return None
    return ReserveArm(product, capacity, start, full, deadband, symmetric)


def setpoint_of_plain(rec: Mapping[str, Any]) -> SiteSetpoint:
    """``SiteSetpoint.from_record`` of a record as the raw codec decodes it, without re-checking
    what the Avro types already guarantee (the filter's hot path).

    Taken only when every field has its plain type (int micros, canonical lower-case uuid,
    non-empty ids, a finite float ``power_kw``, a plainly valid ``reserve``, a known
    ``product``) and the kind's payload is there; any other record, valid or not, goes
    through ``from_record`` (the same result, or its precise ``InvalidRecordError``).
    """
    try:
        kind = _COMMAND_KINDS[rec["kind"]]
        event_id, site_id, setpoint_id = rec["event_id"], rec["site_id"], rec["setpoint_id"]
        event_time, valid_until = rec["event_time"], rec["valid_until"]
        ingest, source, power = rec["ingest_time"], rec["source_id"], rec["power_kw"]
        reserve_rec, product_symbol = rec["reserve"], rec["product"]
        product = None if product_symbol is None else _PRODUCT_OF[product_symbol]
        reserve = None if reserve_rec is None else _plain_reserve(reserve_rec)
        plain = (
            type(event_time) is int
            and type(valid_until) is int
            and (ingest is None or type(ingest) is int)
            and type(event_id) is str
            and _CANONICAL_UUID(event_id) is not None
            and type(site_id) is str
            and site_id != ""
            and type(setpoint_id) is str
            and setpoint_id != ""
            and (source is None or type(source) is str)
            and (reserve is not None or reserve_rec is None)
            and (power is None or (type(power) is float and _isfinite(power)))
            and (power is not None or (kind is not _SET_POWER and kind is not _ORDER))
            and (reserve is not None or kind is not _ARM)
            and (product is not None or (kind is not _DISARM and kind is not _ORDER))
        )
    except (KeyError, TypeError):
        plain = False
    if not plain:
        return SiteSetpoint.from_record(rec)
    return SiteSetpoint(
        event_id=event_id,
        event_time=event_time,
        site_id=site_id,
        setpoint_id=setpoint_id,
        kind=kind,
        valid_until=valid_until,
        power_kw=power,
        reserve=reserve,
        product=product,
        source_id=source,
        ingest_time=ingest,
    )


def telemetry_of_plain_columns(columns: Mapping[str, Sequence[Any]]) -> list[SiteTelemetry]:
    """``SiteTelemetry.from_plain`` of many records given as columns (field name -> the rows'
    raw-codec values, every row one ``telemetry_plainly_valid`` accepted): the same objects
    without building a dict per row (the site book's columnar batches)."""
    converted = {name: _convert(name, values) for name, values in columns.items()}
    # positional, in the dataclass's own field order (taken from the class, never re-typed)
    rows = zip(*(converted[name] for name in _TELEMETRY_FIELDS), strict=True)
    return [SiteTelemetry(*row) for row in rows]


_TELEMETRY_FIELDS = tuple(f.name for f in dataclass_fields(SiteTelemetry))
_FLOATS = frozenset(
    f.name for f in dataclass_fields(SiteTelemetry) if f.type in ("float", "float | None")
)
_ENUM_OF: Mapping[str, Mapping[str, object]] = {
    "mode": {m.value: m for m in SiteMode},
    "reserve_armed": {p.value: p for p in Product},
}


def _convert(name: str, values: Sequence[Any]) -> Sequence[Any]:
    if name in _FLOATS:
        return [None if v is None else float(v) for v in values]
    of = _ENUM_OF.get(name)
    if of is not None:
        return [of[v] for v in values]
    return values


_SITE_MODES = frozenset(m.value for m in SiteMode)
_PRODUCTS = frozenset(p.value for p in Product)


def telemetry_plainly_valid(rec: Mapping[str, Any]) -> bool:
    """True when a SiteTelemetry as decoded by the raw codec (``logical_types=False``: every
    field present, Avro-typed, int micros, canonical str uuid) passes
    :meth:`SiteTelemetry.from_record`'s semantic checks: numbers finite, ``soc_pct`` in
    0..100, non-negative PV/load/headroom/limits/armed capacities, non-empty ``site_id``,
    known enum symbols.

    The fast path of the telemetry agent: a few comparisons, no allocation. False means
    "not shown valid here" (also for any other spelling: a missing key, a datetime, a sum
    that overflows): the caller then runs ``from_record``, which raises the precise typed
    error, or accepts what this check is too quick to accept.
    """
    try:
        soc = rec["soc_pct"]
        pv, load = rec["pv_power_kw"], rec["load_kw"]
        up, down = rec["headroom_up_kw"], rec["headroom_down_kw"]
        max_out, max_in = rec["max_discharge_kw"], rec["max_charge_kw"]
        optional = rec["frequency_hz"], rec["capacity_kwh"], rec["setpoint_kw"]
        baseline = rec["baseline_kw"]
        fcrn, up_d, down_d, ffr = (
            rec["armed_fcr_n_kw"],
            rec["armed_fcr_d_up_kw"],
            rec["armed_fcr_d_down_kw"],
            rec["armed_ffr_kw"],
        )
        ingest = rec["ingest_time"]
        # one finiteness test for all: NaN or an infinity anywhere makes the sum non-finite
        total = rec["battery_power_kw"] + rec["grid_power_kw"] + soc + pv + load + up + down
        total += max_out + max_in + (optional[0] or 0.0) + (optional[1] or 0.0)
        total += fcrn + up_d + down_d + ffr + rec["order_afrr_kw"] + rec["order_mfrr_kw"]
        return (
            _isfinite(total + (optional[2] or 0.0) + (baseline or 0.0))
            and 0.0 <= soc <= 100.0
            and fcrn >= 0.0
            and up_d >= 0.0
            and down_d >= 0.0
            and ffr >= 0.0
            and pv >= 0.0
            and load >= 0.0
            and up >= 0.0
            and down >= 0.0
            and max_out >= 0.0
            and max_in >= 0.0
            and type(rec["event_time"]) is int
            and (ingest is None or type(ingest) is int)
            and type(rec["event_id"]) is str
            and rec["site_id"] != ""
            and rec["mode"] in _SITE_MODES
            and rec["reserve_armed"] in _PRODUCTS
        )
    except (KeyError, TypeError):
        return False


def record_unions(event_name: str) -> tuple[tuple[str, str], ...]:
    """(field, full record name) of the event's fields that are a union of null and one
    record (SiteSetpoint's and SiteCommand's ``reserve``)."""
    raw = raw_codec().registry.current(event_name).raw
    namespace = raw.get("namespace", "")
    out = []
    for field in raw["fields"]:
        branches = field["type"] if isinstance(field["type"], list) else []
        named = [b for b in branches if isinstance(b, Mapping) and b.get("type") == "record"]
        if len(branches) == 2 and "null" in branches and len(named) == 1:
            name = str(named[0]["name"])
            out.append((field["name"], name if "." in name else f"{namespace}.{name}"))
    return tuple(out)


@functools.cache
def branch_encoder(event_name: str) -> Callable[[Mapping[str, Any]], bytes]:
    """``raw_codec().encode(event_name, record)`` that names the branch of each union of null
    and a record (fastavro's tuple notation: the same bytes, but fastavro no longer tries
    the dict against the record to pick the branch: an ARM command 19 -> 12 us). A record the
    codec refuses is encoded again as given, for the codec's precise error."""
    encode = raw_codec().encode
    unions = record_unions(event_name)
    if not unions:
        return functools.partial(encode, event_name)

    def encoded(record: Mapping[str, Any]) -> bytes:
        named = record
        for field, name in unions:
            value = record.get(field)
            if type(value) is dict:
                named = {**named, field: (name, value)}
        if named is record:
            return encode(event_name, record)
        try:
            return encode(event_name, named)
        except InvalidEventError:
            return encode(event_name, record)  # raises the error about the record as given

    return encoded
