"""The live operations view's model: fleet, sites, one site and activations (pure).

Folded from decoded events (records as the raw codec decodes them: ``contract.codec``'s
``raw_codec``, timestamps int microseconds since the epoch, enums their symbol) by
:meth:`ViewModel.apply`; telemetry, the one bulk input, also row by row from the feed's
column-wise decoding (:meth:`ViewModel.telemetry_row`). No Kafka, no HTTP, no clock of its
own: ``clock`` (live: the wall clock) or, without one, the newest event time seen (an
archive: "now" is the end of the log) says what "now" and "the last 15 minutes" are.

What each view shows, and from where:

- **Fleet** (``fleet.state``, 1 s windows; the smallest window the worker emits): fleet
  battery power, headroom, sites online/faulted, mean grid frequency, the per-OEM split.
  Target and baseline come from the live compliance verdicts of the same window
  (``compliance.verdicts``, ``event_time`` = the window's end): baseline = power - the
  verdict's measured response (the compliance step's own baseline), target = baseline + the
  sum of the required responses of every obligation judged in that window. A FleetState
  that reports a ``baseline_mw`` itself (issue 14) takes that instead. No obligation judged:
  no target. Per product: what is armed or ordered now (assignments and activations in
  force), the sites with that reserve armed (their telemetry), and the latest required and
  delivered response (verdicts).
- **Sites** (``site.telemetry``, ``site.device-status``, ``site.faults``,
  ``site.command-results``): per site OEM/model, link state, mode, SoC, power, baseline,
  delivered = power - baseline, the last command result with its measured power, active
  faults, last seen. Today's SiteTelemetry has no baseline: it is taken as 0 and flagged
  ``baseline_reported: false`` (the page labels it); a ``baseline_kw`` field, when the
  schema gets one, is shown as is.
- **Site**: one site's samples (:class:`~flowerhub.ui.series.SiteHistory`) and a timeline of
  its command results, fault changes and link changes.
- **Activations**: :mod:`flowerhub.ui.activations`.

Every change bumps ``seq``; each site, fleet point and obligation remembers the ``seq`` of
its last change, so a view sends what changed since a client's cursor (:mod:`flowerhub.ui.views`).
Bad values never raise: a non-finite number is shown as missing, a record without its key
or time is counted in ``stats.skipped`` and ignored.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowerhub.ui.activations import Activations, Verdict, verdict_of
from flowerhub.ui.series import SiteHistory, finite
from flowerhub.ui.sites import (
    SiteEvent,
    SiteState,
    TelemetryRow,
    fault_of,
    result_text,
)

US = 1_000_000
#: SiteTelemetry / FleetState fields of the per-site baseline (issue 14), read when present
SITE_BASELINE_FIELD = "baseline_kw"
FLEET_BASELINE_FIELD = "baseline_mw"
LINK_STATES = ("ONLINE", "DEGRADED", "OFFLINE", "REDISCOVERED")
HISTORY_HZ = 4  # samples per second a site's ring keeps for the whole window, at most


def _text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) else None


def _micros(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class FleetPoint:
    """One fleet window (its end ``t``) and the target/baseline judged on it."""

    t: int
    seq: int
    power_mw: float | None
    headroom_up_mw: float | None
    headroom_down_mw: float | None
    sites_online: int
    sites_faulted: int
    frequency_hz: float | None
    per_oem: dict[str, float | None]
    baseline_mw: float | None = None
    baseline_source: str | None = None  # "reported" | "compliance"
    target_mw: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "t": self.t,
            "power_mw": _r(self.power_mw, 6),
            "headroom_up_mw": _r(self.headroom_up_mw, 6),
            "headroom_down_mw": _r(self.headroom_down_mw, 6),
            "sites_online": self.sites_online,
            "sites_faulted": self.sites_faulted,
            "frequency_hz": _r(self.frequency_hz, 5),
            "per_oem": {k: _r(v, 6) for k, v in self.per_oem.items()},
            "baseline_mw": _r(self.baseline_mw, 6),
            "baseline_source": self.baseline_source,
            "target_mw": _r(self.target_mw, 6),
        }


@dataclass
class FeedStats:
    """What the feed saw: events per topic, undecodable or skipped records and why."""

    events: dict[str, int] = field(default_factory=dict)
    undecodable: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    last_error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "events": dict(self.events),
            "undecodable": dict(self.undecodable),
            "skipped": self.skipped,
            "last_error": self.last_error,
        }


class ViewModel:
    """The folded state of every view (see the module doc)."""

    def __init__(
        self,
        *,
        window_s: int = 900,
        clock: Callable[[], int] | None = None,
        keep_verdict_points: int = 20_000,
    ) -> None:
        if window_s < 10:
            raise ValueError(f"window_s must be >= 10, got {window_s}")
        self.window_s = window_s
        self.clock = clock
        self.seq = 0
        self.latest_us = 0  # newest event time seen
        self.sites: dict[str, SiteState] = {}
        self.fleet: deque[FleetPoint] = deque()
        self.fleet_window_s: int | None = None
        self._fleet_at: dict[int, FleetPoint] = {}
        self.per_oem: dict[str, dict[str, object]] = {}
        self.fleet_ids: set[str] = set()
        self.acts = Activations()
        self.verdict_points: deque[Verdict] = deque(maxlen=keep_verdict_points)
        self._judged: dict[
            int, dict[str, tuple[float, float]]
        ] = {}  # t -> obligation -> (req, meas)
        self.stats = FeedStats()
        self.history_capacity = window_s * HISTORY_HZ

    # ----------------------------------------------------------------- time
    def now(self) -> int:
        return self.clock() if self.clock is not None else self.latest_us

    def horizon(self) -> int:
        """The oldest instant the views show (now - window)."""
        return self.now() - self.window_s * US

    def _bump(self) -> int:
        self.seq += 1
        return self.seq

    def _saw(self, t: int | None) -> None:
        if t is not None and t > self.latest_us:
            self.latest_us = t

    # ---------------------------------------------------------------- input
    def apply(self, name: str, record: Mapping[str, Any]) -> None:
        """Fold one decoded event of any topic the UI reads (others are ignored)."""
        handler = self._HANDLERS.get(name)
        if handler is None:
            return
        handler(self, record)

    def count(self, topic: str, n: int = 1) -> None:
        self.stats.events[topic] = self.stats.events.get(topic, 0) + n

    def undecodable(self, topic: str, error: str) -> None:
        self.stats.undecodable[topic] = self.stats.undecodable.get(topic, 0) + 1
        self.stats.last_error = f"{topic}: {error}"

    def _skip(self, why: str) -> None:
        self.stats.skipped += 1
        self.stats.last_error = why

    def _site(self, site_id: str) -> SiteState:
        site = self.sites.get(site_id)
        if site is None:
            site = SiteState(site_id)
            self.sites[site_id] = site
        return site

    def _telemetry(self, record: Mapping[str, Any]) -> None:
        t = _micros(record, "event_time")
        if t is None:
            self._skip("SiteTelemetry without event_time")
            return
        self.telemetry_row(
            TelemetryRow(
                _text(record, "site_id") or "",
                t,
                _text(record, "oem") or "",
                _text(record, "model") or "",
                record.get("battery_power_kw"),
                record.get("soc_pct"),
                record.get("setpoint_kw"),
                record.get("frequency_hz"),
                _text(record, "mode"),
                bool(record.get("faulted")),
                _text(record, "reserve_armed"),
                record.get(SITE_BASELINE_FIELD),
            )
        )

    def telemetry_row(self, row: TelemetryRow) -> None:
        """One SiteTelemetry sample; an older one than the site's newest is ignored."""
        (
            site_id,
            t,
            oem,
            model,
            power_kw,
            soc_pct,
            setpoint_kw,
            frequency_hz,
            mode,
            faulted,
            armed,
            baseline_kw,
        ) = row
        if not site_id:
            self._skip("SiteTelemetry without site_id")
            return
        site = self._site(site_id)
        if site.last_seen is not None and t < site.last_seen:
            self._skip(f"{site_id}: telemetry older than its newest sample")
            return
        site.oem, site.model, site.mode = oem, model, mode
        site.power_kw = finite(power_kw)
        site.soc_pct = finite(soc_pct)
        site.setpoint_kw = finite(setpoint_kw)
        site.frequency_hz = finite(frequency_hz)
        site.baseline_kw = finite(baseline_kw)
        site.faulted = faulted
        site.armed = armed if armed and armed != "NONE" else None
        site.last_seen = t
        history = site.history
        if history is None:
            history = site.history = SiteHistory(self.history_capacity)
        history.append(
            t,
            (
                site.power_kw,
                site.setpoint_kw,
                site.baseline_kw,
                site.soc_pct,
                float(len(site.faults)),
            ),
        )
        site.version = self._bump()
        self._saw(t)

    def _device_status(self, record: Mapping[str, Any]) -> None:
        site_id, t = _text(record, "site_id"), _micros(record, "event_time")
        if not site_id or t is None:
            self._skip("DeviceStatus without site_id or event_time")
            return
        site = self._site(site_id)
        if site.link_time is not None and t < site.link_time:
            return
        state = _text(record, "state")
        if state != site.link:
            detail = _text(record, "last_error")
            text = f"link {state}" + (f": {detail}" if detail and state != "ONLINE" else "")
            self._event(site, t, "link", state, text)
        site.link, site.link_time = state, t
        site.rtt_ms = finite(record.get("rtt_ms"))
        errors, depth = record.get("error_count"), record.get("outbox_depth")
        site.errors = errors if isinstance(errors, int) and errors >= 0 else 0
        site.last_error = _text(record, "last_error")
        site.outbox_depth = depth if isinstance(depth, int) and depth >= 0 else 0
        site.version = self._bump()
        self._saw(t)

    def _faults(self, record: Mapping[str, Any]) -> None:
        site_id, t = _text(record, "site_id"), _micros(record, "event_time")
        if not site_id or t is None:
            self._skip("SiteFault without site_id or event_time")
            return
        site = self._site(site_id)
        site.faults = tuple(fault_of(f) for f in _list(record.get("active")))
        for kind, key in (("raised", "raised"), ("cleared", "cleared")):
            for fault in _list(record.get(key)):
                f = fault_of(fault)
                self._event(
                    site,
                    t,
                    "fault",
                    f["severity"] if kind == "raised" else "CLEARED",
                    f"{kind}: {f['name'] or f['code']} ({f['code']})",
                )
        site.version = self._bump()
        self._saw(t)

    def _result(self, record: Mapping[str, Any]) -> None:
        site_id, t = _text(record, "site_id"), _micros(record, "event_time")
        if not site_id or t is None:
            self._skip("CommandResult without site_id or event_time")
            return
        site = self._site(site_id)
        status = _text(record, "status") or "?"
        result: dict[str, object] = {
            "t": t,
            "command_id": _text(record, "command_id"),
            "status": status,
            "requested_kw": _r(finite(record.get("requested_kw")), 3),
            "written_kw": _r(finite(record.get("written_kw")), 3),
            "measured_kw": _r(finite(record.get("measured_kw")), 3),
            "measured_soc_pct": _r(finite(record.get("measured_soc_pct")), 2),
            "likely_cause": _text(record, "likely_cause"),
            "reason": _text(record, "reason"),
            "latency_ms": _r(finite(record.get("latency_ms")), 1),
        }
        if site.result_t is None or t >= site.result_t:
            site.result, site.result_t = result, t
        self._event(site, t, "command", status, result_text(result))
        site.version = self._bump()
        self._saw(t)

    def _event(self, site: SiteState, t: int, kind: str, status: str | None, text: str) -> None:
        site.timeline.append(SiteEvent(self.seq + 1, t, kind, status, text))

    # ----------------------------------------------------------------- fleet
    def _fleet_state(self, record: Mapping[str, Any]) -> None:
        t, window = _micros(record, "window_end"), record.get("window_s")
        if t is None or not isinstance(window, int) or window <= 0:
            self._skip("FleetState without window_end or window_s")
            return
        fleet_id = _text(record, "fleet_id")
        if fleet_id:
            self.fleet_ids.add(fleet_id)
        self._saw(t)
        if self.fleet_window_s is None or window < self.fleet_window_s:
            self.fleet_window_s = window
            self.fleet.clear()
            self._fleet_at.clear()
        elif window != self.fleet_window_s:
            return  # the longer windows repeat what the short ones show
        if t in self._fleet_at:
            self._skip(f"FleetState for window end {t} twice")
            return
        per_oem: dict[str, float | None] = {}
        for entry in _list(record.get("per_oem")):
            oem = entry.get("oem") if isinstance(entry, Mapping) else None
            if isinstance(oem, str):
                per_oem[oem] = finite(entry.get("power_mw"))
                self.per_oem[oem] = {
                    "oem": oem,
                    "power_mw": _r(finite(entry.get("power_mw")), 6),
                    "headroom_up_mw": _r(finite(entry.get("headroom_up_mw")), 6),
                    "headroom_down_mw": _r(finite(entry.get("headroom_down_mw")), 6),
                    "sites_online": entry.get("sites_online"),
                    "sites_faulted": entry.get("sites_faulted"),
                    "t": t,
                }
        point = FleetPoint(
            t=t,
            seq=self._bump(),
            power_mw=finite(record.get("total_power_mw")),
            headroom_up_mw=finite(record.get("headroom_up_mw")),
            headroom_down_mw=finite(record.get("headroom_down_mw")),
            sites_online=_count(record.get("sites_online")),
            sites_faulted=_count(record.get("sites_faulted")),
            frequency_hz=finite(record.get("mean_frequency_hz")),
            per_oem=per_oem,
        )
        reported = finite(record.get(FLEET_BASELINE_FIELD))
        if reported is not None:
            point.baseline_mw, point.baseline_source = reported, "reported"
        if self.fleet and t < self.fleet[-1].t:  # late window: keep the series in time order
            points = sorted([*self.fleet, point], key=lambda p: p.t)
            self.fleet = deque(points)
        else:
            self.fleet.append(point)
        self._fleet_at[t] = point
        self._judge(point)
        self._prune_fleet()

    def _prune_fleet(self) -> None:
        horizon = self.horizon() - 60 * US  # a minute of slack for a late clock
        while self.fleet and self.fleet[0].t < horizon:
            old = self.fleet.popleft()
            self._fleet_at.pop(old.t, None)
        for t in [t for t in self._judged if t < horizon]:
            del self._judged[t]

    def _verdict(self, record: Mapping[str, Any]) -> None:
        verdict = verdict_of(record, self.seq + 1)
        if verdict is None:
            self._skip("ComplianceVerdict without event_time")
            return
        self._bump()
        self._saw(verdict.t)
        ob = self.acts.verdict(verdict)
        if ob is None or verdict.required_mw is None or verdict.measured_mw is None:
            return
        self.verdict_points.append(verdict)
        judged = self._judged.setdefault(verdict.t, {})
        judged[ob.obligation_id] = (verdict.required_mw, verdict.measured_mw)
        point = self._fleet_at.get(verdict.t)
        if point is not None:
            self._judge(point)

    def _judge(self, point: FleetPoint) -> None:
        """Target and baseline of a fleet window from the verdicts judged on it."""
        judged = self._judged.get(point.t)
        if not judged or point.power_mw is None:
            return
        first = judged[min(judged)]
        if point.baseline_source != "reported":
            point.baseline_mw, point.baseline_source = point.power_mw - first[1], "compliance"
        baseline = point.baseline_mw if point.baseline_mw is not None else 0.0
        point.target_mw = baseline + math.fsum(req for req, _ in judged.values())
        point.seq = self._bump()

    def _activation(self, record: Mapping[str, Any]) -> None:
        ob = self.acts.activation(record, self.seq + 1)
        if ob is None:
            self._skip("MarketActivation without activation_id")
            return
        self._bump()
        self._saw(_micros(record, "event_time"))

    def _assignment(self, record: Mapping[str, Any]) -> None:
        ob = self.acts.assignment(record, self.seq + 1)
        if ob is None:
            self._skip("ReserveAssignment without assignment_id")
            return
        self._bump()
        self._saw(_micros(record, "event_time"))

    _HANDLERS: Mapping[str, Callable[[ViewModel, Mapping[str, Any]], None]] = {
        "SiteTelemetry": _telemetry,
        "DeviceStatus": _device_status,
        "SiteFault": _faults,
        "CommandResult": _result,
        "FleetState": _fleet_state,
        "ComplianceVerdict": _verdict,
        "MarketActivation": _activation,
        "ReserveAssignment": _assignment,
    }

    # ------------------------------------------------------------- summaries
    def products(self) -> list[dict[str, object]]:
        """Per product: in force now, sites armed, the latest verdict's figures."""
        now = self.now()
        rows: dict[str, dict[str, Any]] = {}

        def row(product: str) -> dict[str, Any]:
            return rows.setdefault(
                product,
                {
                    "product": product,
                    "armed_mw": 0.0,
                    "obligations": 0,
                    "sites_armed": 0,
                    "required_mw": None,
                    "delivered_mw": None,
                    "status": None,
                    "finding": None,
                    "t": None,
                },
            )

        for ob in self.acts.in_force(now):
            r = row(ob.product)
            r["armed_mw"] = round(r["armed_mw"] + abs(ob.amount_mw or 0.0), 6)
            r["obligations"] += 1
        for site in self.sites.values():
            if site.armed:
                row(site.armed)["sites_armed"] += 1
        recent = now - 10 * US  # a verdict older than this is no longer "now"
        latest: dict[str, Verdict] = {}
        for verdict in reversed(self.verdict_points):
            if verdict.t < recent:
                break
            latest.setdefault(verdict.product, verdict)
        for product, verdict in latest.items():
            r = row(product)
            r.update(
                required_mw=_r(verdict.required_mw, 6),
                delivered_mw=_r(verdict.measured_mw, 6),
                status=verdict.status,
                finding=verdict.finding,
                t=verdict.t,
            )
        return sorted(rows.values(), key=lambda r: str(r["product"]))

    def site_counts(self) -> dict[str, int]:
        now = self.now()
        stale = now - 10 * US
        counts = {"total": len(self.sites), "reporting": 0, "faulted": 0, "offline": 0}
        for site in self.sites.values():
            if site.last_seen is not None and site.last_seen >= stale:
                counts["reporting"] += 1
            if site.faulted or site.faults:
                counts["faulted"] += 1
            if site.link == "OFFLINE":
                counts["offline"] += 1
        return counts


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
