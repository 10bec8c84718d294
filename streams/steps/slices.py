"""Per-partition window slices: the partition owner's part of a FleetState (pure).

Telemetry is partitioned by ``site_id``; each worker aggregates the partitions it owns. A
partition's window, once its own stream time passed the window's end plus the grace
(``site_partition``), becomes a :class:`WindowSlice`: every site's last sample in that
window (the same ``SiteSample`` the fleet aggregate takes). The leader merges the slices
of every partition per window (:func:`merge_samples`) and computes the FleetState from
them with the same ``FleetAggregator.result`` as one worker over every partition would:
each site lives in one partition, so the union of the partitions' last samples is the
fleet's, and the sums are ``math.fsum`` (exact: neither the partition split nor the order
matters). One worker or ten, live or from a backlog, the FleetStates are the same.

A slice also carries each site's availability to the leader (power limits and headroom:
the allocator's room) and the partition's progress (``clock``: its stream time, so the
leader knows no slice closing at or before it is still to come; ``closed``: per window
length the end of the last window closed; ``offset``: the next telemetry offset after the
records folded so far). A :class:`Progress` record carries the same without rows, so a
partition whose windows do not close for a while still tells the leader how far it is.

Wire form (internal topic ``<app_id>-site-slices``, partition = the telemetry partition):
compact JSON, floats written with ``repr`` (exact round trip), one JSON array per row in
the order of ``ROW_FIELDS``. ``decode`` checks every field and raises
``InvalidRecordError`` on anything else (the leader dead-letters it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contract.errors import InvalidConfigError, InvalidRecordError
from contract.fields import MICROS_PER_S
from streams.steps.fleet_aggregation import SiteSample, WindowColumns, WindowState

VERSION = 1
#: the fields of one row on the wire: the site, then ``SiteSample``'s fields in order
ROW_FIELDS = ("site_id", *SiteSample._fields)
_N_ROW = len(ROW_FIELDS)
_COMPACT = (",", ":")
_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one telemetry partition's owner is: its stream time (None: nothing read
    yet), per window length the end of the last window closed, the next telemetry offset
    after the records folded, and whether it is idle (caught up and silent: the leader does
    not wait for a partition that has no stream time yet)."""

    partition: int
    clock: int | None
    closed: Mapping[int, int] = field(default_factory=dict)
    offset: int = 0
    idle: bool = False
    late: int = 0  #: telemetry records dropped as late in this partition so far


@dataclass(frozen=True, slots=True)
class WindowSlice:
    """One partition's part of one window: each site's last sample, by site id."""

    partition: int
    window_s: int
    window_start: int
    rows: tuple[tuple[str, SiteSample], ...]

    @property
    def window_end(self) -> int:
        return self.window_start + self.window_s * MICROS_PER_S


@dataclass(frozen=True, slots=True)
class SliceRecord:
    """A record of the slices topic: a slice with the progress at its emission, or the
    progress alone (``slice`` None)."""

    progress: PartitionProgress
    slice: WindowSlice | None = None


class SliceAggregator:
    """``TumblingWindows`` aggregator of one partition and window length: a closed window
    becomes a :class:`WindowSlice` (rows sorted by site id)."""

    def __init__(self, partition: int, window_s: int) -> None:
        if window_s <= 0:
            raise InvalidConfigError(f"window_s must be > 0, got {window_s}")
        if partition < 0:
            raise InvalidConfigError(f"partition must be >= 0, got {partition}")
        self.partition = partition
        self.window_s = window_s

    def result(self, state: WindowState, window_start: int) -> WindowSlice:
        return WindowSlice(
            self.partition, self.window_s, window_start, tuple(sorted(state.items()))
        )

    def result_of_columns(self, cols: WindowColumns, window_start: int) -> WindowSlice:
        """The slice of a window given column-wise (the batch path; it names the sites)."""
        if (
            cols.site_ids is None
            or cols.event_time is None
            or cols.max_discharge_kw is None
            or cols.max_charge_kw is None
        ):
            raise ValueError("a slice needs the columns' site ids, event times and limits")
        oems = cols.oem_names
        stacks: list[tuple[float, ...] | None]
        if cols.armed is None or cols.orders is None:
            stacks = [None] * len(cols.site_ids)
        else:
            values = [
                (*a, *o) for a, o in zip(cols.armed.tolist(), cols.orders.tolist(), strict=True)
            ]
            stacks = [v if any(v) else None for v in values]
        frequency = cols.frequency_hz.tolist()
        has_frequency = cols.has_frequency.tolist()
        baseline = cols.baseline_kw.tolist()
        has_baseline = cols.has_baseline.tolist()
        times = cols.event_time.tolist()
        rows = [
            (
                site,
                _new_tuple(
                    SiteSample,
                    (
                        t,
                        power,
                        up,
                        down,
                        faulted,
                        oems[oem],
                        f if has_f else None,
                        b if has_b else None,
                        stack,
                        max_out,
                        max_in,
                    ),
                ),
            )
            for (
                site,
                t,
                power,
                up,
                down,
                faulted,
                oem,
                f,
                has_f,
                b,
                has_b,
                stack,
                max_out,
                max_in,
            ) in zip(
                cols.site_ids,
                times,
                cols.power_kw.tolist(),
                cols.headroom_up_kw.tolist(),
                cols.headroom_down_kw.tolist(),
                cols.faulted.tolist(),
                cols.oem.tolist(),
                frequency,
                has_frequency,
                baseline,
                has_baseline,
                stacks,
                cols.max_discharge_kw.tolist(),
                cols.max_charge_kw.tolist(),
                strict=True,
            )
        ]
        rows.sort(key=_site_of)
        return WindowSlice(self.partition, self.window_s, window_start, tuple(rows))


def _site_of(row: tuple[str, SiteSample]) -> str:
    return row[0]


# ---------------------------------------------------------------------------- wire form
def _progress_dict(p: PartitionProgress) -> dict[str, Any]:
    return {
        "v": VERSION,
        "p": p.partition,
        "clock": p.clock,
        "closed": {str(w): end for w, end in sorted(p.closed.items())},
        "offset": p.offset,
        "idle": p.idle,
        "late": p.late,
    }


def encode(record: SliceRecord) -> bytes:
    """The JSON bytes of a slices-topic record."""
    out = _progress_dict(record.progress)
    s = record.slice
    if s is not None:
        out["w"] = s.window_s
        out["start"] = s.window_start
        out["rows"] = [[site, *sample] for site, sample in s.rows]
    return json.dumps(out, separators=_COMPACT, allow_nan=False).encode()


_NAME = "WindowSlice"


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if type(value) is not int:
        raise InvalidRecordError(_NAME, name, f"expected an int, got {value!r}")
    return value


def _opt_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and type(value) is not int:
        raise InvalidRecordError(_NAME, name, f"expected an int or null, got {value!r}")
    return value


def _num(value: Any, name: str) -> float:
    if type(value) is float or type(value) is int:
        out = float(value)
        if math.isfinite(out):
            return out
    raise InvalidRecordError(_NAME, name, f"expected a finite number, got {value!r}")


def _opt_num(value: Any, name: str) -> float | None:
    return None if value is None else _num(value, name)


def _sample(row: Any) -> tuple[str, SiteSample]:
    if not isinstance(row, list) or len(row) != _N_ROW:
        raise InvalidRecordError(_NAME, "rows", f"expected a row of {_N_ROW} values")
    site, t, power, up, down, faulted, oem, freq, base, stack, max_out, max_in = row
    if not isinstance(site, str) or not site:
        raise InvalidRecordError(_NAME, "rows.site_id", f"expected a site id, got {site!r}")
    if type(t) is not int:
        raise InvalidRecordError(_NAME, "rows.event_time", f"expected an int, got {t!r}")
    if type(faulted) is not bool or not isinstance(oem, str):
        raise InvalidRecordError(_NAME, "rows", "faulted must be a bool and oem a string")
    values: tuple[float, ...] | None = None
    if stack is not None:
        if not isinstance(stack, list) or len(stack) != 6:
            raise InvalidRecordError(_NAME, "rows.stack", "expected 6 values or null")
        values = tuple(_num(v, "rows.stack") for v in stack)
    return site, _new_tuple(
        SiteSample,
        (
            t,
            _num(power, "rows.power_kw"),
            _num(up, "rows.headroom_up_kw"),
            _num(down, "rows.headroom_down_kw"),
            faulted,
            oem,
            _opt_num(freq, "rows.frequency_hz"),
            _opt_num(base, "rows.baseline_kw"),
            values,
            _opt_num(max_out, "rows.max_discharge_kw"),
            _opt_num(max_in, "rows.max_charge_kw"),
        ),
    )


def decode(value: bytes | None) -> SliceRecord:
    """A slices-topic record from its bytes (``InvalidRecordError`` for anything else)."""
    if value is None:
        raise InvalidRecordError(_NAME, "<value>", "no value (tombstone)")
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRecordError(_NAME, "<value>", f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRecordError(_NAME, "<value>", "expected a JSON object")
    if data.get("v") != VERSION:
        raise InvalidRecordError(_NAME, "v", f"unknown version {data.get('v')!r}")
    closed = data.get("closed")
    if not isinstance(closed, dict):
        raise InvalidRecordError(_NAME, "closed", "expected an object")
    try:
        closed_by = {int(w): end for w, end in closed.items()}
    except ValueError as exc:
        raise InvalidRecordError(_NAME, "closed", "keys must be window lengths") from exc
    if any(type(end) is not int for end in closed_by.values()):
        raise InvalidRecordError(_NAME, "closed", "values must be ints")
    idle = data.get("idle")
    if type(idle) is not bool:
        raise InvalidRecordError(_NAME, "idle", f"expected a bool, got {idle!r}")
    partition = _int(data, "p")
    progress = PartitionProgress(
        partition,
        _opt_int(data, "clock"),
        closed_by,
        _int(data, "offset"),
        idle,
        _int(data, "late"),
    )
    if "rows" not in data:
        return SliceRecord(progress)
    rows = data["rows"]
    if not isinstance(rows, list):
        raise InvalidRecordError(_NAME, "rows", "expected a list")
    window_s = _int(data, "w")
    if window_s <= 0:
        raise InvalidRecordError(_NAME, "w", f"expected a window length > 0, got {window_s}")
    start = _int(data, "start")
    return SliceRecord(progress, WindowSlice(partition, window_s, start, tuple(map(_sample, rows))))


def close_time(s: WindowSlice, grace: int) -> int:
    """When a slice's window closes in its partition's stream time: end + grace (the
    timestamp the leader merges it at)."""
    return s.window_end + grace


def merge_samples(into: WindowState, rows: Iterable[tuple[str, SiteSample]]) -> None:
    """A slice's rows into a window's ``{site: last sample}`` (newer or equal time wins,
    as within one partition: a site appears in one partition only)."""
    for site, sample in rows:
        prev = into.get(site)
        if prev is None or sample.event_time >= prev.event_time:
            into[site] = sample


def slices_of(records: Sequence[SliceRecord]) -> list[WindowSlice]:
    """The slices among ``records`` (tests, tools)."""
    return [r.slice for r in records if r.slice is not None]
