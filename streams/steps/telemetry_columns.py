"""SiteTelemetry column-wise: the telemetry step's batch path (pure: numpy, no Faust/Kafka).

:func:`telemetry_columns` takes a :class:`contract.columnar.ColumnBatch` of SiteTelemetry
values and marks the rows the batch path takes (``fast``): decoded column-wise and passing
``records_site.telemetry_plainly_valid``'s checks, evaluated on whole columns with the
same arithmetic (the same sum in the same order for finiteness, the same comparisons; NaN
fails them as it does in Python). Every other row goes to the per-record path, which gives
its precise error or its result. For fast rows it gives the ``SiteSample`` fields column-wise
(:class:`SampleColumns`, site and oem as codes into their distinct names).

:func:`latest_per_site` is the site book's batch update: which row is each site's newest
(newest event time wins, a tie goes to the later row, an older one than the book's is
ignored) and how many ``update_plain_telemetry`` calls a record-by-record pass would have
accepted (the book's ``version``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.columnar import ColumnBatch, EnumColumn
from contract.enums import Product, SiteMode
from contract.records import SiteTelemetry
from streams.steps.expected import ARMED_FIELDS, ORDER_FIELDS
from streams.steps.fleet_aggregation import SiteSample
from streams.steps.plain import telemetry_of_plain_columns

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Rows = npt.NDArray[np.intp]

_SITE_MODES = frozenset(m.value for m in SiteMode)
_PRODUCTS = frozenset(p.value for p in Product)
_NO_TIME = np.iinfo(np.int64).min
#: the SiteTelemetry fields, read from the columns by ``TelemetryColumns.telemetry``
_FIELDS = tuple(SiteTelemetry.__dataclass_fields__)
_new_tuple = tuple.__new__


@dataclass
class SampleColumns:
    """The ``SiteSample`` of every fast row, column-wise (garbage in the other rows)."""

    event_time: I64
    power_kw: F64
    headroom_up_kw: F64
    headroom_down_kw: F64
    faulted: Bools
    oem: I64  # codes into oem_names (-1: not a fast row)
    oem_names: list[str]
    frequency_hz: F64  # NaN where none was reported
    has_frequency: Bools
    site: I64  # codes into site_names (-1: not a fast row)
    site_names: list[str]
    baseline_kw: F64  # NaN where none was reported
    has_baseline: Bools
    armed: F64 | None  # rows x expected.ARMED_COLUMNS, kW; None: no row holds any
    orders: F64 | None  # rows x expected.ORDER_COLUMNS, kW; None: no row holds any
    stacked: Bools | None  # rows holding some (None: none does)
    max_discharge_kw: F64
    max_charge_kw: F64

    def samples(self, rows: Rows) -> list[SiteSample]:
        """The rows' SiteSamples (as ``sample_of_plain`` builds them from the records)."""
        oems = self.oem_names
        columns = [
            self.event_time[rows].tolist(),
            self.power_kw[rows].tolist(),
            self.headroom_up_kw[rows].tolist(),
            self.headroom_down_kw[rows].tolist(),
            self.faulted[rows].tolist(),
            [oems[o] for o in self.oem[rows].tolist()],
            _optional_values(self.frequency_hz[rows], self.has_frequency[rows]),
            _optional_values(self.baseline_kw[rows], self.has_baseline[rows]),
            self._stacks(rows),
            self.max_discharge_kw[rows].tolist(),
            self.max_charge_kw[rows].tolist(),
        ]
        return [_new_tuple(SiteSample, row) for row in zip(*columns, strict=True)]

    def _stacks(self, rows: Rows) -> list[tuple[float, ...] | None]:
        """The rows' ``SiteSample.stack`` (None where a row holds nothing)."""
        if self.armed is None or self.orders is None or self.stacked is None:
            return [None] * len(rows)
        values = np.concatenate((self.armed[rows], self.orders[rows]), axis=1).tolist()
        held = self.stacked[rows].tolist()
        return [tuple(v) if h else None for v, h in zip(values, held, strict=True)]


def _optional_values(values: F64, present: Bools) -> list[float | None]:
    """``values`` as floats, None where not ``present``."""
    out: list[float | None] = values.tolist()
    if present.all():
        return out
    if not present.any():
        return [None] * len(out)
    return [v if p else None for v, p in zip(out, present.tolist(), strict=True)]


@dataclass
class TelemetryColumns:
    """A batch of SiteTelemetry values: which rows are fast, their samples, their records."""

    batch: ColumnBatch
    fast: Bools
    samples: SampleColumns

    def records(self, rows: Rows) -> list[dict[str, Any]]:
        """The rows' records as the raw codec decodes them (fast rows only)."""
        return self.batch.records(rows)

    def telemetry(self, rows: Rows) -> list[SiteTelemetry]:
        """The rows' SiteTelemetry (fast rows only: ``from_plain`` of their records, built
        from the columns without a dict per row)."""
        batch = self.batch
        return telemetry_of_plain_columns({name: batch.values(name, rows) for name in _FIELDS})


def _optional(batch: ColumnBatch, name: str) -> F64:
    """``value or 0.0`` of a nullable double column (None -> 0.0; finiteness unchanged)."""
    column = batch.columns[name]
    present = column.present
    values: F64 = column.values
    return values if present is None else np.where(present, values, 0.0)


def _symbols_in(column: EnumColumn, allowed: frozenset[str]) -> Bools:
    known = np.array([s in allowed for s in column.symbols], np.bool_)
    inside: Bools = known[np.clip(column.values, 0, len(known) - 1)]
    return inside


def plainly_valid(batch: ColumnBatch) -> Bools:
    """``telemetry_plainly_valid`` of every row, on columns (False where not ``ok``)."""
    col = batch.columns
    soc, pv, load = col["soc_pct"].values, col["pv_power_kw"].values, col["load_kw"].values
    up, down = col["headroom_up_kw"].values, col["headroom_down_kw"].values
    max_out, max_in = col["max_discharge_kw"].values, col["max_charge_kw"].values
    armed = [col[name].values for name in ARMED_FIELDS]
    mode, reserve = col["mode"], col["reserve_armed"]
    site = col["site_id"]
    if not isinstance(mode, EnumColumn) or not isinstance(reserve, EnumColumn):
        raise TypeError("mode and reserve_armed must be enum columns")
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are the point here
        total = col["battery_power_kw"].values + col["grid_power_kw"].values + soc + pv + load
        total = total + up + down
        total += (
            max_out + max_in + _optional(batch, "frequency_hz") + _optional(batch, "capacity_kwh")
        )
        total += armed[0] + armed[1] + armed[2] + armed[3]
        total += col["order_afrr_kw"].values + col["order_mfrr_kw"].values
        finite = np.isfinite(
            total + _optional(batch, "setpoint_kw") + _optional(batch, "baseline_kw")
        )
    valid: Bools = (
        batch.ok
        & finite
        & (soc >= 0.0)
        & (soc <= 100.0)
        & (pv >= 0.0)
        & (load >= 0.0)
        & (up >= 0.0)
        & (down >= 0.0)
        & (max_out >= 0.0)
        & (max_in >= 0.0)
        & (armed[0] >= 0.0)
        & (armed[1] >= 0.0)
        & (armed[2] >= 0.0)
        & (armed[3] >= 0.0)
        & (site.values > 0)
        & _symbols_in(mode, _SITE_MODES)
        & _symbols_in(reserve, _PRODUCTS)
    )
    return valid


def _codes(batch: ColumnBatch, name: str, rows: Rows, n: int) -> tuple[I64, list[str]]:
    """Codes of string column ``name`` at ``rows`` (-1 in the other rows) and the values."""
    codes = np.full(n, -1, np.int64)
    codes[rows], names = batch.codes(name, rows)
    return codes, names


def telemetry_columns(batch: ColumnBatch) -> TelemetryColumns:
    """The fast rows of a decoded SiteTelemetry batch and their samples."""
    fast = plainly_valid(batch)
    rows = np.flatnonzero(fast)
    col = batch.columns
    mode = col["mode"]
    assert isinstance(mode, EnumColumn)  # noqa: S101  # checked by plainly_valid
    fault = mode.symbols.index(SiteMode.FAULT.value) if SiteMode.FAULT.value in mode.symbols else -1
    frequency = col["frequency_hz"]
    present = frequency.present
    has_frequency = np.ones(len(fast), np.bool_) if present is None else present
    baseline = col["baseline_kw"]
    has_baseline = np.ones(len(fast), np.bool_) if baseline.present is None else baseline.present
    site, site_names = _codes(batch, "site_id", rows, len(fast))
    oem, oem_names = _codes(batch, "oem", rows, len(fast))
    samples = SampleColumns(
        col["event_time"].values,
        col["battery_power_kw"].values,
        col["headroom_up_kw"].values,
        col["headroom_down_kw"].values,
        col["faulted"].values | (mode.values == fault),
        oem,
        oem_names,
        np.where(has_frequency, frequency.values, np.nan),
        has_frequency,
        site,
        site_names,
        np.where(has_baseline, baseline.values, np.nan),
        has_baseline,
        *_stack_columns(batch, fast),
        col["max_discharge_kw"].values,
        col["max_charge_kw"].values,
    )
    return TelemetryColumns(batch, fast, samples)


def _stack_columns(batch: ColumnBatch, fast: Bools) -> tuple[F64 | None, F64 | None, Bools | None]:
    """(armed, orders, stacked) of ``SampleColumns``: None for all three when no fast row
    holds a reserve or an order."""
    col = batch.columns
    if not any(col[name].values.any() for name in (*ARMED_FIELDS, *ORDER_FIELDS)):
        return None, None, None  # the common case before reserves are armed: one pass
    armed = np.column_stack([col[name].values for name in ARMED_FIELDS])
    orders = np.column_stack([col[name].values for name in ORDER_FIELDS])
    stacked = (armed != 0.0).any(axis=1) | (orders != 0.0).any(axis=1)
    if not (stacked & fast).any():
        return None, None, None
    return armed, orders, stacked


def latest_per_site(
    site: I64, event_time: I64, names: list[str], seen: Mapping[str, int]
) -> tuple[Rows, int]:
    """The book's update by rows (in order) of sites ``site`` (codes into ``names``) at
    ``event_time``, given each site's event time already in the book (``seen``): (the
    positions of each updated site's last accepted row, the number of accepted rows).

    Row i is accepted when its time is >= the site's newest so far (the book's, then the
    earlier rows'): as ``SiteBook.update_plain_telemetry`` called row by row."""
    n = len(site)
    if n == 0:
        return np.empty(0, np.intp), 0
    before = np.array([seen.get(name, _NO_TIME) for name in names], np.int64)
    order = np.argsort(site, kind="stable")  # by site, then row order
    codes, times = site[order], event_time[order]
    low = int(times.min())
    span = int(times.max()) - low + 1
    if (int(codes.max()) + 1) * span >= 2**62:  # times too far apart for one packed key
        return _latest_per_site_loop(site, event_time, before)
    # a running max per site: site * span + time is increasing from one site to the next
    key = codes * span + (times - low)
    newest = np.maximum.accumulate(key) - codes * span + low  # newest time so far, this site
    first = np.ones(n, np.bool_)
    first[1:] = codes[1:] != codes[:-1]
    previous = np.empty(n, np.int64)
    previous[0] = _NO_TIME
    previous[1:] = newest[:-1]
    previous[first] = _NO_TIME
    accepted = times >= np.maximum(previous, before[codes])
    kept = order[accepted]
    kept_codes = codes[accepted]
    last = np.ones(len(kept), np.bool_)
    last[:-1] = kept_codes[1:] != kept_codes[:-1]
    return np.sort(kept[last]), int(accepted.sum())


def _latest_per_site_loop(site: I64, event_time: I64, before: I64) -> tuple[Rows, int]:
    newest = before.tolist()
    latest: dict[int, int] = {}
    accepted = 0
    for i, (code, t) in enumerate(zip(site.tolist(), event_time.tolist(), strict=True)):
        if t >= newest[code]:
            newest[code] = t
            latest[code] = i
            accepted += 1
    return np.array(sorted(latest.values()), np.intp), accepted
