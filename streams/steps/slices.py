"""Per-partition window slices: the partition owner's part of a FleetState (pure).

Telemetry is partitioned by ``site_id``; each worker aggregates the partitions it owns. A
partition's window, once its own stream time passed the window's end plus the grace
(``site_partition``), becomes a :class:`WindowSlice`: every site's last sample in that
window (the ``SiteSample`` fields the fleet aggregate takes, column-wise). The leader merges
the slices of every partition per window (:func:`window_columns_of`) and computes the
FleetState from the merged columns with the same ``FleetAggregator.result_of_columns`` as
one worker over every partition would: each site lives in one partition, so the union of
the partitions' last samples is the fleet's, and the sums are ``math.fsum`` (exact: neither
the partition split nor the order matters). One worker or ten, live or from a backlog, the
FleetStates are the same.

A slice also carries each site's availability to the leader (power limits and headroom:
the allocator's room) and the partition's progress (``clock``: its stream time, so the
leader knows no slice closing at or before it is still to come; ``closed``: per window
length the end of the last window closed; ``offset``: the next telemetry offset after the
records folded so far). A record without a slice carries the progress alone, so a
partition whose windows do not close for a while still tells the leader how far it is.

Wire form (internal topic ``<app_id>-site-slices``, partition = the telemetry partition):
``MAGIC``, the header's length (4 bytes, big-endian), a JSON header (progress, window,
site ids, OEM names), then the columns as little-endian arrays in ``_ARRAYS`` order (the
floats' own bits: exact; NaN where a site reported no frequency or baseline). A 1,000-site
slice decodes in tens of microseconds (column-wise: the leader's share of the work stays
small next to the partitions'). ``decode`` checks everything and raises
``InvalidRecordError`` on anything else (the leader dead-letters it).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.errors import InvalidConfigError, InvalidRecordError
from contract.fields import MICROS_PER_S
from streams.steps.fleet_aggregation import SiteSample, WindowColumns, WindowState

VERSION = 2
MAGIC = b"FHSL"
_LENGTH = struct.Struct(">I")
_NAME = "WindowSlice"
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
#: the per-row arrays after the header: (field, dtype)
_ARRAYS: tuple[tuple[str, str], ...] = (
    ("event_time", "<i8"),
    ("power_kw", "<f8"),
    ("headroom_up_kw", "<f8"),
    ("headroom_down_kw", "<f8"),
    ("max_discharge_kw", "<f8"),
    ("max_charge_kw", "<f8"),
    ("frequency_hz", "<f8"),
    ("baseline_kw", "<f8"),
    ("faulted", "u1"),
    ("oem", "<u2"),
)
_STACK = 6  # expected.STACK_FIELDS


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one telemetry partition's owner is: its stream time (None: nothing read
    yet), per window length the end of the last window closed, the next telemetry offset
    after the records folded, and whether it is idle (caught up without any stream time:
    the leader does not wait for it)."""

    partition: int
    clock: int | None
    closed: Mapping[int, int] = field(default_factory=dict)
    offset: int = 0
    idle: bool = False
    late: int = 0  #: telemetry records dropped as late in this partition so far


@dataclass(frozen=True, eq=False)
class WindowSlice:
    """One partition's part of one window: each site's last sample, one row per site
    (sorted by site id). ``frequency_hz``/``baseline_kw`` NaN where none was reported;
    ``oem`` codes into ``oem_names``; ``stack`` (rows x 6: the armed capacities and order
    changes) None when no site of the slice holds any."""

    partition: int
    window_s: int
    window_start: int
    site_ids: tuple[str, ...]
    event_time: I64
    power_kw: F64
    headroom_up_kw: F64
    headroom_down_kw: F64
    max_discharge_kw: F64
    max_charge_kw: F64
    frequency_hz: F64
    baseline_kw: F64
    faulted: Bools
    oem: npt.NDArray[np.uint16]
    oem_names: tuple[str, ...]
    stack: F64 | None = None

    @property
    def window_end(self) -> int:
        return self.window_start + self.window_s * MICROS_PER_S

    def __len__(self) -> int:
        return len(self.site_ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowSlice):
            return NotImplemented
        return self.rows() == other.rows() and (
            self.partition,
            self.window_s,
            self.window_start,
        ) == (other.partition, other.window_s, other.window_start)

    def __hash__(self) -> int:
        return hash((self.partition, self.window_s, self.window_start, self.site_ids))

    def rows(self) -> list[tuple[str, SiteSample]]:
        """The slice as (site, SiteSample) rows (tests, the book's per-site view)."""
        names = self.oem_names
        stacks: list[tuple[float, ...] | None]
        if self.stack is None:
            stacks = [None] * len(self)
        else:
            stacks = [tuple(v) if any(v) else None for v in self.stack.tolist()]
        return [
            (
                site,
                SiteSample(
                    t,
                    p,
                    up,
                    down,
                    bool(fault),
                    names[oem],
                    None if math.isnan(f) else f,
                    None if math.isnan(b) else b,
                    stack,
                    max_out,
                    max_in,
                ),
            )
            for site, t, p, up, down, fault, oem, f, b, stack, max_out, max_in in zip(
                self.site_ids,
                self.event_time.tolist(),
                self.power_kw.tolist(),
                self.headroom_up_kw.tolist(),
                self.headroom_down_kw.tolist(),
                self.faulted.tolist(),
                self.oem.tolist(),
                self.frequency_hz.tolist(),
                self.baseline_kw.tolist(),
                stacks,
                self.max_discharge_kw.tolist(),
                self.max_charge_kw.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class SliceRecord:
    """A record of the slices topic: a slice with the progress at its emission, or the
    progress alone (``slice`` None)."""

    progress: PartitionProgress
    slice: WindowSlice | None = None


def _optional(values: Sequence[float | None]) -> F64:
    return np.array([math.nan if v is None else v for v in values], np.float64)


def slice_of_samples(
    partition: int, window_s: int, window_start: int, rows: Sequence[tuple[str, SiteSample]]
) -> WindowSlice:
    """A slice from (site, sample) rows (sorted by site here)."""
    rows = sorted(rows, key=lambda r: r[0])
    samples = [s for _, s in rows]
    oems = sorted({s.oem for s in samples})
    code = {name: i for i, name in enumerate(oems)}
    stacks = [s.stack for s in samples]
    stack = None
    if any(st is not None for st in stacks):
        stack = np.array([(0.0,) * _STACK if st is None else st for st in stacks], np.float64)
    return WindowSlice(
        partition,
        window_s,
        window_start,
        tuple(site for site, _ in rows),
        np.array([s.event_time for s in samples], np.int64),
        np.array([s.power_kw for s in samples], np.float64),
        np.array([s.headroom_up_kw for s in samples], np.float64),
        np.array([s.headroom_down_kw for s in samples], np.float64),
        _optional([s.max_discharge_kw for s in samples]),
        _optional([s.max_charge_kw for s in samples]),
        _optional([s.frequency_hz for s in samples]),
        _optional([s.baseline_kw for s in samples]),
        np.array([s.faulted for s in samples], np.bool_),
        np.array([code[s.oem] for s in samples], np.uint16),
        tuple(oems),
        stack,
    )


class SliceAggregator:
    """``TumblingWindows`` aggregator of one partition and window length: a closed window
    becomes a :class:`WindowSlice`."""

    def __init__(self, partition: int, window_s: int) -> None:
        if window_s <= 0:
            raise InvalidConfigError(f"window_s must be > 0, got {window_s}")
        if partition < 0:
            raise InvalidConfigError(f"partition must be >= 0, got {partition}")
        self.partition = partition
        self.window_s = window_s

    def result(self, state: WindowState, window_start: int) -> WindowSlice:
        return slice_of_samples(self.partition, self.window_s, window_start, list(state.items()))

    def result_of_columns(self, cols: WindowColumns, window_start: int) -> WindowSlice:
        """The slice of a window given column-wise (the batch path: it names the sites)."""
        if (
            cols.site_ids is None
            or cols.event_time is None
            or cols.max_discharge_kw is None
            or cols.max_charge_kw is None
        ):
            raise ValueError("a slice needs the columns' site ids, event times and limits")
        order = np.argsort(np.array(cols.site_ids, dtype=object), kind="stable")
        stack = None
        if cols.armed is not None and cols.orders is not None:
            stack = np.concatenate((cols.armed, cols.orders), axis=1)[order]
        used = np.unique(cols.oem)
        names = [cols.oem_names[int(c)] for c in used]
        by_name = sorted(range(len(names)), key=names.__getitem__)
        remap = np.zeros(int(cols.oem.max()) + 1 if len(cols.oem) else 1, np.uint16)
        for new, k in enumerate(by_name):
            remap[int(used[k])] = new
        sites = cols.site_ids
        return WindowSlice(
            self.partition,
            self.window_s,
            window_start,
            tuple(sites[i] for i in order.tolist()),
            cols.event_time[order],
            cols.power_kw[order],
            cols.headroom_up_kw[order],
            cols.headroom_down_kw[order],
            cols.max_discharge_kw[order],
            cols.max_charge_kw[order],
            np.where(cols.has_frequency, cols.frequency_hz, math.nan)[order],
            np.where(cols.has_baseline, cols.baseline_kw, math.nan)[order],
            cols.faulted[order],
            remap[cols.oem[order]],
            tuple(names[k] for k in by_name),
            stack,
        )


# ---------------------------------------------------------------------------- merging
def window_columns_of(parts: Sequence[WindowSlice]) -> WindowColumns:
    """The fleet window's columns from every partition's slice of it (what
    ``fleet_aggregation.window_columns`` gives for the union of their rows)."""
    names = sorted({n for s in parts for n in s.oem_names})
    code = {n: i for i, n in enumerate(names)}
    oem = np.concatenate(
        [np.array([code[n] for n in s.oem_names], np.int64)[s.oem.astype(np.int64)] for s in parts]
    )
    frequency = np.concatenate([s.frequency_hz for s in parts])
    baseline = np.concatenate([s.baseline_kw for s in parts])
    armed = orders = None
    if any(s.stack is not None for s in parts):
        both = np.concatenate(
            [np.zeros((len(s), _STACK)) if s.stack is None else s.stack for s in parts]
        )
        armed, orders = both[:, :4], both[:, 4:]
    has_frequency = ~np.isnan(frequency)
    has_baseline = ~np.isnan(baseline)
    return WindowColumns(
        np.concatenate([s.power_kw for s in parts]),
        np.concatenate([s.headroom_up_kw for s in parts]),
        np.concatenate([s.headroom_down_kw for s in parts]),
        np.concatenate([s.faulted for s in parts]),
        oem,
        names,
        frequency,
        has_frequency,
        baseline,
        has_baseline,
        armed,
        orders,
    )


def close_time(s: WindowSlice, grace: int) -> int:
    """When a slice's window closes in its partition's stream time: end + grace (the
    timestamp the leader merges it at)."""
    return s.window_end + grace


# ---------------------------------------------------------------------------- wire form
def encode(record: SliceRecord) -> bytes:
    """The bytes of a slices-topic record (see the module doc)."""
    p = record.progress
    header: dict[str, Any] = {
        "v": VERSION,
        "p": p.partition,
        "clock": p.clock,
        "closed": {str(w): end for w, end in sorted(p.closed.items())},
        "offset": p.offset,
        "idle": p.idle,
        "late": p.late,
    }
    arrays = b""
    s = record.slice
    if s is not None:
        header |= {
            "w": s.window_s,
            "start": s.window_start,
            "sites": list(s.site_ids),
            "oems": list(s.oem_names),
            "stack": s.stack is not None,
        }
        parts = [np.ascontiguousarray(getattr(s, name), dtype) for name, dtype in _ARRAYS]
        if s.stack is not None:
            parts.append(np.ascontiguousarray(s.stack, "<f8"))
        arrays = b"".join(a.tobytes() for a in parts)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + _LENGTH.pack(len(text)) + text + arrays


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if type(value) is not int:
        raise InvalidRecordError(_NAME, name, f"expected an int, got {value!r}")
    return value


def _header(value: bytes) -> tuple[dict[str, Any], memoryview]:
    if len(value) < len(MAGIC) + _LENGTH.size or not value.startswith(MAGIC):
        raise InvalidRecordError(_NAME, "<value>", "not a slices-topic record (magic)")
    (length,) = _LENGTH.unpack_from(value, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    if start + length > len(value):
        raise InvalidRecordError(_NAME, "<header>", "shorter than its length")
    try:
        data = json.loads(value[start : start + length])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRecordError(_NAME, "<header>", f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRecordError(_NAME, "<header>", "expected a JSON object")
    if data.get("v") != VERSION:
        raise InvalidRecordError(_NAME, "v", f"unknown version {data.get('v')!r}")
    return data, memoryview(value)[start + length :]


def _progress(data: Mapping[str, Any]) -> PartitionProgress:
    closed = data.get("closed")
    if not isinstance(closed, dict):
        raise InvalidRecordError(_NAME, "closed", "expected an object")
    try:
        closed_by = {int(w): end for w, end in closed.items()}
    except ValueError as exc:
        raise InvalidRecordError(_NAME, "closed", "keys must be window lengths") from exc
    if any(type(end) is not int for end in closed_by.values()):
        raise InvalidRecordError(_NAME, "closed", "values must be ints")
    idle, clock = data.get("idle"), data.get("clock")
    if type(idle) is not bool:
        raise InvalidRecordError(_NAME, "idle", f"expected a bool, got {idle!r}")
    if clock is not None and type(clock) is not int:
        raise InvalidRecordError(_NAME, "clock", f"expected an int or null, got {clock!r}")
    return PartitionProgress(
        _int(data, "p"), clock, closed_by, _int(data, "offset"), idle, _int(data, "late")
    )


def _strings(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    values = data.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise InvalidRecordError(_NAME, name, "expected a list of non-empty strings")
    return tuple(values)


def _slice(data: Mapping[str, Any], body: memoryview, partition: int) -> WindowSlice:
    window_s, start = _int(data, "w"), _int(data, "start")
    if window_s <= 0:
        raise InvalidRecordError(_NAME, "w", f"expected a window length > 0, got {window_s}")
    sites, oems = _strings(data, "sites"), _strings(data, "oems")
    stacked = data.get("stack")
    if type(stacked) is not bool:
        raise InvalidRecordError(_NAME, "stack", "expected a bool")
    n = len(sites)
    sizes = [np.dtype(dtype).itemsize * n for _, dtype in _ARRAYS]
    expected = sum(sizes) + (8 * _STACK * n if stacked else 0)
    if len(body) != expected:
        raise InvalidRecordError(_NAME, "<columns>", f"{len(body)} bytes, expected {expected}")
    columns: dict[str, Any] = {}
    at = 0
    for (name, dtype), size in zip(_ARRAYS, sizes, strict=True):
        columns[name] = np.frombuffer(body[at : at + size], dtype).copy()
        at += size
    stack = np.frombuffer(body[at:], "<f8").reshape(n, _STACK).copy() if stacked else None
    required = [columns[f] for f in ("power_kw", "headroom_up_kw", "headroom_down_kw")]
    if not all(np.isfinite(c).all() for c in required):
        raise InvalidRecordError(_NAME, "<columns>", "power and headroom must be finite")
    for optional in ("frequency_hz", "baseline_kw", "max_discharge_kw", "max_charge_kw"):
        if np.isinf(columns[optional]).any():
            raise InvalidRecordError(_NAME, optional, "infinite")
    if stack is not None and not np.isfinite(stack).all():
        raise InvalidRecordError(_NAME, "stack", "must be finite")
    if n and int(columns["oem"].max()) >= len(oems):
        raise InvalidRecordError(_NAME, "oem", "a code outside the OEM names")
    if int(columns["faulted"].max(initial=0)) > 1:
        raise InvalidRecordError(_NAME, "faulted", "expected 0 or 1")
    return WindowSlice(
        partition,
        window_s,
        start,
        sites,
        columns["event_time"].astype(np.int64),
        columns["power_kw"].astype(np.float64),
        columns["headroom_up_kw"].astype(np.float64),
        columns["headroom_down_kw"].astype(np.float64),
        columns["max_discharge_kw"].astype(np.float64),
        columns["max_charge_kw"].astype(np.float64),
        columns["frequency_hz"].astype(np.float64),
        columns["baseline_kw"].astype(np.float64),
        columns["faulted"].astype(np.bool_),
        columns["oem"].astype(np.uint16),
        oems,
        stack,
    )


def decode(value: bytes | None) -> SliceRecord:
    """A slices-topic record from its bytes (``InvalidRecordError`` for anything else)."""
    if value is None:
        raise InvalidRecordError(_NAME, "<value>", "no value (tombstone)")
    data, body = _header(bytes(value))
    progress = _progress(data)
    if "w" not in data:
        if len(body):
            raise InvalidRecordError(_NAME, "<columns>", "columns without a window")
        return SliceRecord(progress)
    return SliceRecord(progress, _slice(data, body, progress.partition))
