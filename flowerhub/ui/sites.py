"""One site as the Sites and Site views show it (pure): its state, row, detail and timeline.

:class:`SiteState` is what the view model (:mod:`flowerhub.ui.model`) keeps per site, from
its telemetry, link status, faults and command results; :meth:`SiteState.row_values` is the
Sites view's row in :data:`ROW_FIELDS` order (rows travel as lists), :meth:`SiteState.detail`
the Site view's header, :class:`SiteEvent` a line of its timeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flowerhub.ui.series import SiteHistory

SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "MINOR": 2, "MAJOR": 3}
TIMELINE = 200  # events per site in the Site view's timeline


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class TelemetryRow(NamedTuple):
    """The SiteTelemetry fields the UI uses (values as decoded; checked when folded)."""

    site_id: str
    t: int
    oem: str
    model: str
    power_kw: object
    soc_pct: object
    setpoint_kw: object
    frequency_hz: object
    mode: str | None
    faulted: bool
    armed: str | None
    baseline_kw: object = None


#: the Sites view's columns, in the order of ``SiteState.row_values`` (rows travel as lists)
ROW_FIELDS = (
    "id",
    "oem",
    "model",
    "link",
    "mode",
    "soc_pct",
    "power_kw",
    "setpoint_kw",
    "baseline_kw",
    "baseline_reported",
    "delivered_kw",
    "frequency_hz",
    "armed",
    "faulted",
    "faults",
    "fault_text",
    "fault_severity",
    "result",
    "result_kw",
    "result_cause",
    "result_t",
    "last_seen",
    "version",
)
_NO_RESULT: dict[str, object] = {}


@dataclass(frozen=True, slots=True)
class SiteEvent:
    """A line of the Site view's timeline: a command result, a fault change, a link change."""

    seq: int
    t: int
    kind: str  # "command" | "fault" | "link"
    status: str | None  # the result's status, the fault's severity / CLEARED, the link state
    text: str

    def as_json(self) -> dict[str, object]:
        return {"t": self.t, "kind": self.kind, "status": self.status, "text": self.text}


@dataclass(slots=True)
class SiteState:
    """What the UI knows of one site (see the module doc)."""

    site_id: str
    version: int = 0
    oem: str = ""
    model: str = ""
    mode: str | None = None
    power_kw: float | None = None
    setpoint_kw: float | None = None
    baseline_kw: float | None = None  # None: not reported (shown as 0, labelled)
    soc_pct: float | None = None
    frequency_hz: float | None = None
    armed: str | None = None
    faulted: bool = False  # the telemetry's flag
    last_seen: int | None = None  # newest telemetry event time
    link: str | None = None
    link_time: int | None = None
    rtt_ms: float | None = None
    errors: int = 0
    last_error: str | None = None
    outbox_depth: int = 0
    faults: tuple[dict[str, str], ...] = ()
    result: dict[str, object] | None = None
    result_t: int | None = None
    history: SiteHistory | None = None
    timeline: deque[SiteEvent] = field(default_factory=lambda: deque(maxlen=TIMELINE))

    @property
    def delivered_kw(self) -> float | None:
        if self.power_kw is None:
            return None
        return self.power_kw - (self.baseline_kw or 0.0)

    def row_values(self) -> list[object]:
        """The Sites view's row, values in ``ROW_FIELDS`` order (the compact wire form)."""
        faults = self.faults
        worst = None
        if faults:
            worst = max((f["severity"] for f in faults), key=lambda s: SEVERITY_RANK.get(s, 0))
        result = self.result or _NO_RESULT
        power, baseline = self.power_kw, self.baseline_kw
        return [
            self.site_id,
            self.oem,
            self.model,
            self.link,
            self.mode,
            None if self.soc_pct is None else round(self.soc_pct, 2),
            None if power is None else round(power, 3),
            None if self.setpoint_kw is None else round(self.setpoint_kw, 3),
            round(baseline or 0.0, 3),
            baseline is not None,
            None if power is None else round(power - (baseline or 0.0), 3),
            None if self.frequency_hz is None else round(self.frequency_hz, 4),
            self.armed,
            self.faulted or bool(faults),
            len(faults),
            "; ".join(f["name"] or f["code"] for f in faults) if faults else "",
            worst,
            result.get("status"),
            result.get("measured_kw"),
            result.get("likely_cause"),
            result.get("t"),
            self.last_seen,
            self.version,
        ]

    def row(self) -> dict[str, object]:
        """The Sites view's row as a mapping (``ROW_FIELDS`` -> value)."""
        return dict(zip(ROW_FIELDS, self.row_values(), strict=True))

    def detail(self) -> dict[str, object]:
        """The Site view's header: the row plus link and command detail."""
        return {
            **self.row(),
            "rtt_ms": _r(self.rtt_ms, 1),
            "errors": self.errors,
            "last_error": self.last_error,
            "outbox_depth": self.outbox_depth,
            "link_time": self.link_time,
            "fault_list": list(self.faults),
            "last_result": self.result,
        }


def fault_of(value: object) -> dict[str, str]:
    data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    return {
        "source": str(data.get("source") or ""),
        "code": str(data.get("code") or ""),
        "name": str(data.get("name") or ""),
        "severity": str(data.get("severity") or "INFO"),
    }


def _kw(value: object) -> str:
    return "-" if value is None else f"{value:+.2f} kW"


def result_text(result: Mapping[str, object]) -> str:
    text = (
        f"{result['status']}: requested {_kw(result['requested_kw'])}, written "
        f"{_kw(result['written_kw'])}, measured {_kw(result['measured_kw'])}"
    )
    if result.get("likely_cause"):
        text += f" ({result['likely_cause']})"
    if result.get("reason"):
        text += f" - {result['reason']}"
    return text
