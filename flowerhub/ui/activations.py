"""Activations, reserve assignments and live compliance verdicts for the UI (pure).

Folded from ``market.activations`` (MarketActivation), ``reserve.assignments``
(ReserveAssignment) and ``compliance.verdicts`` (ComplianceVerdict) as the raw codec decodes
them. A verdict names its obligation in ``activation_id``: an activation id, an assignment id
(an armed reserve judged on its own), or nothing (the fleet-wide STALE_SITES warning, kept as
an alert). A verdict for an obligation the UI never saw (its activation is older than the
look-back) still gets a row, with what the verdict says.

Per obligation: its figures, PASS/FAIL/WARN counts, the worst status so far, the latest
verdict, and the last ``keep_verdicts`` verdicts (the Activations view's detail).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowerhub.ui.series import finite

STATUS_RANK = {"PASS": 0, "WARN": 1, "FAIL": 2}
STALE_FINDING = "STALE_SITES"
FREQUENCY_PRODUCTS = frozenset({"FCR_N", "FCR_D_UP", "FCR_D_DOWN", "FFR"})


def _text(record: Mapping[str, Any], name: str, default: str = "") -> str:
    value = record.get(name)
    return value if isinstance(value, str) else default


def _micros(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class Verdict:
    """One live verdict as the UI shows it."""

    seq: int
    t: int
    obligation_id: str | None
    product: str
    rule_id: str
    rule_version: str
    status: str
    finding: str
    required_mw: float | None
    measured_mw: float | None
    threshold: float | None
    message: str
    site_ids: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "t": self.t,
            "activation_id": self.obligation_id,
            "product": self.product,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "status": self.status,
            "finding": self.finding,
            "required_mw": _round(self.required_mw),
            "measured_mw": _round(self.measured_mw),
            "threshold": _round(self.threshold),
            "message": self.message,
            "site_ids": list(self.site_ids[:50]),
            "site_count": len(self.site_ids),
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def verdict_of(record: Mapping[str, Any], seq: int) -> Verdict | None:
    """The verdict of a decoded ComplianceVerdict; None without an event time."""
    t = _micros(record, "event_time")
    if t is None:
        return None
    sites = record.get("site_ids")
    return Verdict(
        seq=seq,
        t=t,
        obligation_id=record.get("activation_id")
        if isinstance(record.get("activation_id"), str)
        else None,
        product=_text(record, "product", "NONE"),
        rule_id=_text(record, "rule_id"),
        rule_version=_text(record, "rule_version"),
        status=_text(record, "status", "WARN"),
        finding=_text(record, "finding"),
        required_mw=finite(record.get("required_mw")),
        measured_mw=finite(record.get("measured_mw")),
        threshold=finite(record.get("threshold")),
        message=_text(record, "message"),
        site_ids=tuple(s for s in sites if isinstance(s, str)) if isinstance(sites, list) else (),
    )


@dataclass(slots=True)
class Obligation:
    """An activation or an armed reserve assignment, and its live verdicts."""

    obligation_id: str
    source: str  # "activation" | "assignment" | "verdict" (seen only in verdicts)
    product: str
    kind: str  # ORDER | TEST | FREQUENCY_EVENT | ASSIGNMENT | "" (unknown)
    amount_mw: float | None  # requested_mw (activation) or capacity_mw (assignment)
    start: int | None
    end: int | None
    fleet_id: str = ""
    test_name: str | None = None
    baseline_mw: float | None = None
    version: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    worst: str | None = None
    last: Verdict | None = None
    verdicts: deque[Verdict] = field(default_factory=deque)

    def state(self, now: int) -> str:
        if self.start is None or self.end is None:
            return "unknown"
        if now < self.start:
            return "pending"
        return "active" if now < self.end else "ended"

    def in_force(self, now: int) -> bool:
        return self.state(now) == "active"

    def as_json(self, now: int) -> dict[str, object]:
        last = self.last
        return {
            "id": self.obligation_id,
            "source": self.source,
            "product": self.product,
            "kind": self.kind,
            "amount_mw": _round(self.amount_mw),
            "start": self.start,
            "end": self.end,
            "state": self.state(now),
            "fleet_id": self.fleet_id,
            "test_name": self.test_name,
            "baseline_mw": _round(self.baseline_mw),
            "pass": self.counts.get("PASS", 0),
            "warn": self.counts.get("WARN", 0),
            "fail": self.counts.get("FAIL", 0),
            "worst": self.worst,
            "last_status": last.status if last else None,
            "last_finding": last.finding if last else None,
            "last_required_mw": _round(last.required_mw) if last else None,
            "last_measured_mw": _round(last.measured_mw) if last else None,
            "last_message": last.message if last else None,
            "last_t": last.t if last else None,
            "version": self.version,
        }


class Activations:
    """Obligations by id, and the fleet-wide alerts (see the module doc)."""

    def __init__(self, keep_verdicts: int = 300, keep_alerts: int = 100) -> None:
        self.keep_verdicts = keep_verdicts
        self.by_id: dict[str, Obligation] = {}
        self.alerts: deque[Verdict] = deque(maxlen=keep_alerts)

    def activation(self, record: Mapping[str, Any], seq: int) -> Obligation | None:
        oid = _text(record, "activation_id")
        if not oid:
            return None
        ob = self._get(oid, "activation")
        ob.source = "activation"
        ob.product = _text(record, "product", "NONE")
        ob.kind = _text(record, "kind")
        ob.amount_mw = finite(record.get("requested_mw"))
        ob.start, ob.end = _micros(record, "start_time"), _micros(record, "end_time")
        ob.fleet_id = _text(record, "fleet_id")
        test_name = record.get("test_name")
        ob.test_name = test_name if isinstance(test_name, str) else None
        ob.baseline_mw = finite(record.get("baseline_mw"))
        ob.version = seq
        return ob

    def assignment(self, record: Mapping[str, Any], seq: int) -> Obligation | None:
        oid = _text(record, "assignment_id")
        if not oid:
            return None
        ob = self._get(oid, "assignment")
        if ob.source == "activation":  # an activation of the same id: it keeps its row
            return ob
        ob.source = "assignment"
        ob.product = _text(record, "product", "NONE")
        ob.kind = "ASSIGNMENT"
        ob.amount_mw = finite(record.get("capacity_mw"))
        ob.start, ob.end = _micros(record, "valid_from"), _micros(record, "valid_until")
        ob.fleet_id = _text(record, "fleet_id")
        ob.version = seq
        return ob

    def verdict(self, verdict: Verdict) -> Obligation | None:
        """Record a verdict; its obligation (None for a fleet-wide alert)."""
        if verdict.obligation_id is None or verdict.finding == STALE_FINDING:
            self.alerts.append(verdict)
            return None
        ob = self._get(verdict.obligation_id, "verdict")
        if ob.source == "verdict" and ob.product == "":
            ob.product = verdict.product
        ob.counts[verdict.status] = ob.counts.get(verdict.status, 0) + 1
        if ob.worst is None or STATUS_RANK.get(verdict.status, 1) > STATUS_RANK.get(ob.worst, 1):
            ob.worst = verdict.status
        if ob.last is None or verdict.t >= ob.last.t:
            ob.last = verdict
        ob.verdicts.append(verdict)
        while len(ob.verdicts) > self.keep_verdicts:
            ob.verdicts.popleft()
        ob.version = verdict.seq
        return ob

    def _get(self, oid: str, source: str) -> Obligation:
        ob = self.by_id.get(oid)
        if ob is None:
            ob = Obligation(oid, source, "", "", None, None, None)
            self.by_id[oid] = ob
        return ob

    def in_force(self, now: int) -> Iterable[Obligation]:
        return (o for o in self.by_id.values() if o.in_force(now))

    def rows(self, now: int, since: int = 0) -> list[dict[str, object]]:
        """Obligations changed after ``since`` (all: 0), newest start first."""
        changed = [o for o in self.by_id.values() if o.version > since]
        changed.sort(key=lambda o: (o.start or 0, o.obligation_id), reverse=True)
        return [o.as_json(now) for o in changed]
