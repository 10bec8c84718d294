"""Fleet aggregation: SiteTelemetry -> FleetState over 1 s and 10 s tumbling windows.

Aggregator contract (quix-streams style): ``initialize() -> S``, ``agg(S, telemetry, ts) -> S``,
``result(S, window_start) -> FleetState``. The state ``S`` is ``dict[site_id, SiteSample]``
(a NamedTuple: JSON/msgpack-serialisable as a list) and is updated in place for speed.

Definitions, per window ``[window_start, window_start + window_s)`` on event time:

- per site, only its **last sample** in the window counts (largest ``event_time``; on a tie
  the one processed later). With the 1 s telemetry cadence this is the site's value in a 1 s
  window; in a 10 s window it is the value at the end of the window (state-like quantities
  such as headroom should not be averaged over a window that saw a step);
- ``total_power_mw``: sum over sites of that last ``battery_power_kw``, / 1000;
- ``headroom_up_mw``/``headroom_down_mw``: the same sum over *non-faulted* sites (a faulted
  site's headroom cannot be dispatched);
- ``sites_online``: sites with at least one sample in the window; ``sites_faulted``: those
  whose last sample is ``faulted`` or in mode FAULT;
- ``mean_frequency_hz``: mean of the last ``frequency_hz`` over sites that report one (None
  if none does);
- ``per_oem``: the same figures per ``oem``, sorted by ``oem``;
- ``baseline_mw``: sum over sites of that last ``baseline_kw``, / 1000, over the sites that
  report one; None when none does (telemetry written before baselines): delivered =
  ``total_power_mw - baseline_mw``;
- ``products``: per reserve product armed at some site, the capacity summed and the
  response it asks for at each site's frequency; per order product in force, the changes
  summed (``steps.expected``).

Sums use ``math.fsum`` so the result does not depend on arrival order.

Late events (``TumblingWindows``): the watermark is the largest event time seen. A window
closes, and its FleetState is emitted exactly once, when ``watermark >= window_end + grace``.
An event for an already closed window is **late**: it is dropped and counted in
``late_events`` (a window is never re-opened or re-emitted; the archive keeps the event).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from contract import fields as f
from contract.enums import SiteMode
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.fields import MICROS_PER_S
from contract.records import FleetState, OemState, SiteTelemetry
from streams.steps.expected import ARMED_COLUMNS, ARMED_FIELDS, ORDER_FIELDS, product_states
from streams.steps.ids import derived_id


class SiteSample(NamedTuple):
    """The part of one SiteTelemetry the aggregate needs (the fields after ``frequency_hz``
    have defaults: window snapshots written before stacked products still load)."""

    event_time: int
    power_kw: float
    headroom_up_kw: float
    headroom_down_kw: float
    faulted: bool
    oem: str
    frequency_hz: float | None
    baseline_kw: float | None = None
    #: the site's armed capacities and order changes (``expected.STACK_FIELDS`` order), None
    #: when it holds none (the common case stays a short tuple)
    stack: tuple[float, ...] | None = None
    #: the site's power limits (what the allocator's room needs besides the figures above;
    #: None in window snapshots written before they were carried)
    max_discharge_kw: float | None = None
    max_charge_kw: float | None = None


def stack_of(values: tuple[float, ...]) -> tuple[float, ...] | None:
    """A sample's ``stack`` of the six per-product values: None when all are 0."""
    return values if any(values) else None


WindowState = dict[str, SiteSample]
_NO_STACK = (0.0,) * 6


def window_start(event_time: int, window_s: int) -> int:
    """Start (inclusive, microseconds) of the ``window_s`` window holding ``event_time``."""
    size = window_s * MICROS_PER_S
    return event_time - event_time % size


def sample_of(tel: SiteTelemetry) -> SiteSample:
    return SiteSample(
        tel.event_time,
        tel.battery_power_kw,
        tel.headroom_up_kw,
        tel.headroom_down_kw,
        tel.faulted or tel.mode is SiteMode.FAULT,
        tel.oem,
        tel.frequency_hz,
        tel.baseline_kw,
        stack_of(
            (
                tel.armed_fcr_n_kw,
                tel.armed_fcr_d_up_kw,
                tel.armed_fcr_d_down_kw,
                tel.armed_ffr_kw,
                tel.order_afrr_kw,
                tel.order_mfrr_kw,
            )
        ),
        tel.max_discharge_kw,
        tel.max_charge_kw,
    )


def sample_of_record(rec: Mapping[str, Any]) -> SiteSample:
    """A sample straight from a decoded SiteTelemetry dict (only the fields used are read and
    validated; the fast path for the agent)."""
    n = "SiteTelemetry"
    mode = rec.get("mode", "UNKNOWN")
    return SiteSample(
        f.micros(rec, n, "event_time"),
        f.number(rec, n, "battery_power_kw"),
        f.nonneg(rec, n, "headroom_up_kw"),
        f.nonneg(rec, n, "headroom_down_kw"),
        f.boolean(rec, n, "faulted", default=False) or mode == SiteMode.FAULT.value,
        f.text(rec, n, "oem"),
        f.opt_number(rec, n, "frequency_hz"),
        f.opt_number(rec, n, "baseline_kw"),
        stack_of(
            (
                *(f.nonneg(rec, n, name, default=0.0) for name in ARMED_FIELDS),
                *(f.number(rec, n, name, default=0.0) for name in ORDER_FIELDS),
            )
        ),
        f.nonneg(rec, n, "max_discharge_kw"),
        f.nonneg(rec, n, "max_charge_kw"),
    )


_FAULT = SiteMode.FAULT.value
_new_tuple = tuple.__new__
_NOTHING: tuple[Any, ...] = ()


class WindowResult(Protocol):
    """A closed window's result names its window."""

    @property
    def window_start(self) -> int: ...


R = TypeVar("R", bound=WindowResult)
R_co = TypeVar("R_co", bound=WindowResult, covariant=True)


class WindowAggregator(Protocol[R_co]):
    """What ``TumblingWindows`` closes a window with: ``FleetAggregator`` (a FleetState),
    or ``slices.SliceAggregator`` (a partition's rows for the leader). ``result`` takes
    the window's ``{site: last sample}``, ``result_of_columns`` the same column-wise
    (``window_fold``: a window opened and closed within one batch)."""

    @property
    def window_s(self) -> int: ...

    def result(self, state: WindowState, window_start: int) -> R_co: ...

    def result_of_columns(self, cols: WindowColumns, window_start: int) -> R_co: ...


def sample_of_plain(rec: Mapping[str, Any]) -> SiteSample:
    """A sample from a SiteTelemetry that ``records_site.telemetry_plainly_valid`` accepted
    (nothing is checked again; ``tuple.__new__`` skips the NamedTuple's Python ``__new__``)."""
    return _new_tuple(
        SiteSample,
        (
            rec["event_time"],
            rec["battery_power_kw"],
            rec["headroom_up_kw"],
            rec["headroom_down_kw"],
            rec["faulted"] or rec["mode"] == _FAULT,
            rec["oem"],
            rec["frequency_hz"],
            rec["baseline_kw"],
            stack_of(
                (
                    rec["armed_fcr_n_kw"],
                    rec["armed_fcr_d_up_kw"],
                    rec["armed_fcr_d_down_kw"],
                    rec["armed_ffr_kw"],
                    rec["order_afrr_kw"],
                    rec["order_mfrr_kw"],
                )
            ),
            rec["max_discharge_kw"],
            rec["max_charge_kw"],
        ),
    )


def _put(state: WindowState, site_id: str, sample: SiteSample) -> WindowState:
    prev = state.get(site_id)
    if prev is None or sample.event_time >= prev.event_time:
        state[site_id] = sample
    return state


class WindowColumns(NamedTuple):
    """The sites' last samples of one window, column-wise (what ``result`` reads): one row
    per site; ``oem`` codes into ``oem_names``; ``frequency_hz``/``baseline_kw`` NaN where
    none reported; ``armed`` (sites x ``expected.ARMED_COLUMNS``) and ``orders`` (sites x
    ``expected.ORDER_COLUMNS``) in kW, None when no site holds any."""

    power_kw: npt.NDArray[np.float64]
    headroom_up_kw: npt.NDArray[np.float64]
    headroom_down_kw: npt.NDArray[np.float64]
    faulted: npt.NDArray[np.bool_]
    oem: npt.NDArray[np.int64]
    oem_names: Sequence[str]
    frequency_hz: npt.NDArray[np.float64]
    has_frequency: npt.NDArray[np.bool_]
    baseline_kw: npt.NDArray[np.float64]
    has_baseline: npt.NDArray[np.bool_]
    armed: npt.NDArray[np.float64] | None
    orders: npt.NDArray[np.float64] | None
    #: the rows' site ids, event times and power limits (kW), where the maker knew them
    #: (the batch path): what a partition's slice carries besides the figures
    site_ids: Sequence[str] | None = None
    max_discharge_kw: npt.NDArray[np.float64] | None = None
    max_charge_kw: npt.NDArray[np.float64] | None = None
    event_time: npt.NDArray[np.int64] | None = None


def window_columns(samples: Sequence[SiteSample]) -> WindowColumns:
    """The columns of a window state's samples."""
    n = len(samples)
    if not n:
        empty = np.empty(0, np.float64)
        return WindowColumns(
            empty,
            empty,
            empty,
            np.empty(0, np.bool_),
            np.empty(0, np.int64),
            [],
            empty,
            np.empty(0, np.bool_),
            empty,
            np.empty(0, np.bool_),
            None,
            None,
        )
    fields = list(zip(*samples, strict=True))  # one tuple per SiteSample field
    names = sorted(set(fields[5]))
    code = {name: i for i, name in enumerate(names)}
    frequency, baseline, stacks = fields[6], fields[7], fields[8]
    armed = orders = None
    if any(s is not None for s in stacks):
        both = np.array([_NO_STACK if s is None else s for s in stacks], np.float64)
        armed, orders = both[:, : len(ARMED_COLUMNS)], both[:, len(ARMED_COLUMNS) :]
    return WindowColumns(
        np.array(fields[1], np.float64),
        np.array(fields[2], np.float64),
        np.array(fields[3], np.float64),
        np.array(fields[4], np.bool_),
        np.array([code[o] for o in fields[5]], np.int64),
        names,
        np.array([math.nan if f is None else f for f in frequency], np.float64),
        np.array([f is not None for f in frequency], np.bool_),
        np.array([math.nan if b is None else b for b in baseline], np.float64),
        np.array([b is not None for b in baseline], np.bool_),
        armed,
        orders,
    )


def _fsum_mw(values: npt.NDArray[np.float64]) -> float:
    return math.fsum(values.tolist()) / 1000.0


def _figures(
    cols: WindowColumns, rows: npt.NDArray[np.bool_] | slice
) -> tuple[float, float, float, int, int]:
    """(power, headroom up, headroom down in MW, sites, faulted sites) of the selected rows.
    ``math.fsum``: exact, so neither arrival order nor the path (columns, dicts) matters."""
    faulted = cols.faulted[rows]
    healthy = ~faulted
    return (
        _fsum_mw(cols.power_kw[rows]),
        _fsum_mw(cols.headroom_up_kw[rows][healthy]),
        _fsum_mw(cols.headroom_down_kw[rows][healthy]),
        len(faulted),
        int(faulted.sum()),
    )


class FleetAggregator:
    """Aggregator of one window length for one fleet (see the module doc)."""

    def __init__(self, fleet_id: str, window_s: int) -> None:
        if window_s <= 0:
            raise InvalidConfigError(f"window_s must be > 0, got {window_s}")
        if not fleet_id:
            raise InvalidConfigError("fleet_id must not be empty")
        self.fleet_id = fleet_id
        self.window_s = window_s

    def initialize(self) -> WindowState:
        return {}

    def agg(self, state: WindowState, telemetry: SiteTelemetry, timestamp: int) -> WindowState:
        """Fold one telemetry event in (``timestamp``: its event time, microseconds)."""
        return _put(state, telemetry.site_id, sample_of(telemetry)._replace(event_time=timestamp))

    def agg_record(
        self, state: WindowState, record: Mapping[str, Any], timestamp: int
    ) -> WindowState:
        """``agg`` on a decoded dict without building a SiteTelemetry (the agent's fast path)."""
        site_id = f.nonempty_text(record, "SiteTelemetry", "site_id")
        return _put(state, site_id, sample_of_record(record)._replace(event_time=timestamp))

    def result(self, state: WindowState, window_start: int) -> FleetState:
        return self.result_of_columns(window_columns(list(state.values())), window_start)

    def result_of_columns(self, cols: WindowColumns, window_start: int) -> FleetState:
        """``result`` of a window state given column-wise (one row per site)."""
        window_end = window_start + self.window_s * MICROS_PER_S
        power, up, down, sites, faulted = _figures(cols, slice(None))
        freqs = cols.frequency_hz[cols.has_frequency].tolist()
        mean_frequency = math.fsum(freqs) / len(freqs) if freqs else None
        has_baseline = cols.has_baseline
        baseline = _fsum_mw(cols.baseline_kw[has_baseline]) if has_baseline.any() else None
        per_oem = []
        for code in sorted(range(len(cols.oem_names)), key=cols.oem_names.__getitem__):
            mask = cols.oem == code
            if mask.any():
                o_power, o_up, o_down, o_sites, o_faulted = _figures(cols, mask)
                oem = cols.oem_names[code]
                per_oem.append(OemState(oem, o_power, o_up, o_down, o_sites, o_faulted))
        return FleetState(
            event_id=derived_id("fleet-state", self.fleet_id, self.window_s, window_start),
            event_time=window_end,
            fleet_id=self.fleet_id,
            window_start=window_start,
            window_end=window_end,
            window_s=self.window_s,
            total_power_mw=power,
            headroom_up_mw=up,
            headroom_down_mw=down,
            sites_online=sites,
            sites_faulted=faulted,
            mean_frequency_hz=mean_frequency,
            per_oem=tuple(per_oem),
            baseline_mw=baseline,
            products=product_states(cols.armed, cols.orders, cols.frequency_hz, mean_frequency),
        )


def _restored(fields: Any) -> SiteSample:
    """A sample from ``TumblingWindows.to_dict`` (a list; its stack a list too, or absent
    in snapshots written before stacked products)."""
    sample = SiteSample(*fields)
    if sample.stack is not None:
        sample = sample._replace(stack=tuple(float(v) for v in sample.stack))
    return sample


class TumblingWindows(Generic[R]):
    """Event-time tumbling windows over an aggregator (``FleetAggregator``: FleetStates)
    with a grace period.

    ``add``/``add_record`` return the results of the windows the new watermark closed,
    oldest first; ``advance`` moves the watermark without an event (a silent partition's
    stream time, ``steps.site_partition``); ``flush`` closes all open windows.
    """

    def __init__(self, aggregator: WindowAggregator[R], grace_s: float = 0.0) -> None:
        if not math.isfinite(grace_s) or grace_s < 0:
            raise InvalidConfigError(f"grace_s must be finite and >= 0, got {grace_s}")
        self.aggregator = aggregator
        self.grace = round(grace_s * MICROS_PER_S)
        self.size = aggregator.window_s * MICROS_PER_S
        self.open: dict[int, WindowState] = {}
        self.watermark: int | None = None
        self.closed_before: int | None = None
        self.late_events = 0
        self._first_close = 0

    def _window_for(self, event_time: int) -> WindowState | None:
        start = event_time - event_time % self.size
        if self.closed_before is not None and start < self.closed_before:
            self.late_events += 1
            return None
        state = self.open.get(start)
        if state is None:
            close = start + self.size + self.grace
            if not self.open or close < self._first_close:
                self._first_close = close
            state = self.open[start] = {}
        return state

    def advance(self, stream_time: int) -> list[R]:
        """Move the watermark to ``stream_time`` (if later); the results it closed."""
        return self._advance(stream_time)

    def _advance(self, event_time: int) -> list[R]:
        if self.watermark is None or event_time > self.watermark:
            self.watermark = event_time
        if not self.open or self._first_close > self.watermark:
            return []  # the earliest open window cannot close yet
        done = sorted(s for s in self.open if s + self.size + self.grace <= self.watermark)
        out = [self.aggregator.result(self.open.pop(s), s) for s in done]
        if self.open:
            self._first_close = min(self.open) + self.size + self.grace
        if done:
            last_end = done[-1] + self.size
            if self.closed_before is None or last_end > self.closed_before:
                self.closed_before = last_end
        return out

    def add(self, telemetry: SiteTelemetry) -> list[R]:
        state = self._window_for(telemetry.event_time)
        if state is not None:
            _put(state, telemetry.site_id, sample_of(telemetry))
        return self._advance(telemetry.event_time)

    def add_record(self, record: Mapping[str, Any]) -> list[R]:
        sample = sample_of_record(record)
        site_id = f.nonempty_text(record, "SiteTelemetry", "site_id")
        state = self._window_for(sample.event_time)
        if state is not None:
            _put(state, site_id, sample)
        return self._advance(sample.event_time)

    def add_sample(self, site_id: str, sample: SiteSample) -> Sequence[R]:
        """``add`` of a ready sample (the agent's hot path: one sample shared by every window
        length; an empty tuple, not a new list, when no window closes)."""
        event_time = sample.event_time
        start = event_time - event_time % self.size
        if self.closed_before is not None and start < self.closed_before:
            self.late_events += 1
        else:
            state = self.open.get(start)
            if state is None:
                state = self._window_for(event_time)
            prev = state.get(site_id) if state is not None else None
            if state is not None and (prev is None or event_time >= prev.event_time):
                state[site_id] = sample
        watermark = self.watermark
        if watermark is None or event_time > watermark:
            self.watermark = watermark = event_time
        if self.open and self._first_close <= watermark:
            return self._advance(event_time)
        return _NOTHING

    def reindex(self) -> None:
        """Note where the earliest open window closes after ``open`` was changed from
        outside (``window_fold``'s batch fold keeps ``open`` itself)."""
        if self.open:
            self._first_close = min(self.open) + self.size + self.grace

    def to_dict(self) -> dict[str, Any]:
        """Open windows and watermarks as plain JSON-able data (for a Faust table)."""
        return {
            "open": {
                str(start): {k: list(v) for k, v in st.items()} for start, st in self.open.items()
            },
            "watermark": self.watermark,
            "closed_before": self.closed_before,
            "late_events": self.late_events,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load what ``to_dict`` wrote (replaces the current windows)."""
        n = "TumblingWindows"
        try:
            opened = {
                int(start): {site: _restored(sample) for site, sample in st.items()}
                for start, st in data["open"].items()
            }
            watermark, closed = data["watermark"], data["closed_before"]
            late = int(data["late_events"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRecordError(n, "<state>", repr(exc)) from exc
        self.open = {}
        self.watermark = None if watermark is None else int(watermark)
        self.closed_before = None if closed is None else int(closed)
        self.late_events = late
        for start, state in sorted(opened.items()):
            close = start + self.size + self.grace
            if not self.open or close < self._first_close:
                self._first_close = close
            self.open[start] = state

    def flush(self) -> list[R]:
        starts = sorted(self.open)
        out = [self.aggregator.result(self.open.pop(s), s) for s in starts]
        if starts:
            self.closed_before = max(self.closed_before or starts[-1], starts[-1] + self.size)
        return out
