"""Hypothesis strategies that generate valid records from Avro schema JSON (tests only).

Needs the ``dev`` extra (hypothesis). ``records(schema)`` draws records in the shape the codec
returns on decode, so ``decode(encode(r)).record == r`` holds without normalisation:

- ``timestamp-micros`` -> aware UTC ``datetime``; ``timestamp-millis`` -> whole milliseconds;
- ``uuid`` -> ``uuid.UUID``; ``double``/``float`` -> finite-or-infinite, never NaN
  (NaN != NaN); ``float`` values are exactly representable in 32 bits;
- ``int``/``long`` over their full range; strings any Unicode text without surrogates;
- a top-level field with a default is sometimes left out (the decoded record then holds the
  default: use ``with_defaults`` to compare); nested records are always complete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

_UTC_MIN = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_UTC_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def _utc_datetimes(millis: bool) -> st.SearchStrategy[dt.datetime]:
    base = st.datetimes(
        min_value=_UTC_MIN.replace(tzinfo=None),
        max_value=_UTC_MAX.replace(tzinfo=None),
        timezones=st.just(dt.UTC),
    )
    if millis:
        return base.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
    return base


_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, width=32),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=32),
    "string": _TEXT,
}
_LOGICAL: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("string", "uuid"): st.uuids(),
    ("long", "timestamp-micros"): _utc_datetimes(millis=False),
    ("long", "timestamp-millis"): _utc_datetimes(millis=True),
}


class _Builder:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.named: dict[str, st.SearchStrategy[Any]] = {}
        self.top_done = False  # only the top-level record leaves defaulted fields out

    def _register(self, schema: Mapping[str, Any], strategy: st.SearchStrategy[Any]) -> None:
        name = str(schema["name"])
        full = name if "." in name else f"{schema.get('namespace', self.namespace)}.{name}"
        self.named[full] = strategy
        self.named[name.rsplit(".", 1)[-1]] = strategy

    def build(self, schema: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911  # per Avro type
        if isinstance(schema, list):
            return st.one_of([self.build(branch) for branch in schema])
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            return st.deferred(lambda: self.named[schema])
        kind = schema["type"]
        logical = (
            _LOGICAL.get((kind, schema.get("logicalType", ""))) if isinstance(kind, str) else None
        )
        if logical is not None:
            return logical
        if kind == "enum":
            strategy: st.SearchStrategy[Any] = st.sampled_from(list(schema["symbols"]))
            self._register(schema, strategy)
            return strategy
        if kind == "fixed":
            size = int(schema["size"])
            strategy = st.binary(min_size=size, max_size=size)
            self._register(schema, strategy)
            return strategy
        if kind == "array":
            return st.lists(self.build(schema["items"]), max_size=4)
        if kind == "map":
            return st.dictionaries(_TEXT, self.build(schema["values"]), max_size=4)
        if kind in ("record", "error"):
            return self._record(schema)
        return self.build(kind)

    def _record(self, schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        self._register(schema, st.deferred(lambda: strategy))
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        top, self.top_done = not self.top_done, True
        for field in schema["fields"]:
            target = optional if top and "default" in field else required
            target[field["name"]] = self.build(field["type"])
        strategy = st.fixed_dictionaries(required, optional=optional)
        return strategy


def records(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of a record schema (raw JSON, as in the ``.avsc`` file)."""
    if schema.get("type") not in ("record", "error"):
        raise ValueError("records() needs a record schema")
    built: st.SearchStrategy[dict[str, Any]] = _Builder(str(schema.get("namespace", ""))).build(
        dict(schema)
    )
    return built


def with_defaults(schema: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with every missing top-level field set to its schema default (as decoded)."""
    out = dict(record)
    for field in schema["fields"]:
        if field["name"] not in out and "default" in field:
            out[field["name"]] = field["default"]
    return out


def site_telemetry_example(**fields: Any) -> dict[str, Any]:
    """One valid SiteTelemetry in raw form (int microseconds, str uuid), the optional fields
    left to their defaults, with ``fields`` on top: the fixed record the codec's and the
    telemetry step's tests vary one field at a time."""
    record: dict[str, Any] = {
        "event_id": "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
        "event_time": 1_700_000_000_000_000,
        "site_id": "site-1",
        "oem": "huawei",
        "model": "SUN2000",
        "battery_power_kw": 1.0,
        "soc_pct": 50.0,
        "grid_power_kw": 0.0,
        "pv_power_kw": 0.0,
        "load_kw": 0.5,
        "headroom_up_kw": 2.0,
        "headroom_down_kw": 2.0,
        "max_discharge_kw": 5.0,
        "max_charge_kw": 5.0,
        "mode": "REMOTE",
    }
    return record | fields
