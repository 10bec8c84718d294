"""What each page gets: a snapshot, then what changed since its cursor (pure).

A view is asked with a :class:`Cursor` (``seq`` 0: a snapshot) and answers a JSON-ready
payload plus the cursor for next time. The server sends the first as the stream's
``snapshot`` event and the rest as ``delta`` events (:mod:`flowerhub.ui.server`); the same
functions answer the plain GET endpoints (``/api/fleet`` ...), so a script gets what the page
gets. Every payload carries ``status`` (source, loading, now, the feed's counters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowerhub.ui.model import ViewModel
from flowerhub.ui.sites import ROW_FIELDS

Payload = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """Where the model's events come from, for the status line."""

    mode: str  # "live" | "archive"
    description: str  # e.g. "Kafka 127.0.0.1:9092, topics demo-x.*"


@dataclass
class FeedState:
    """The feed's progress, as the status line shows it (mutated by the feed)."""

    loading: bool = True
    progress: float = 0.0  # 0..1 of the history to catch up on
    waiting_for: tuple[str, ...] = ()  # topics that do not exist yet
    error: str | None = None  # the last connection problem, None when fine


@dataclass(frozen=True)
class Cursor:
    """How far a client is: the model's ``seq`` it saw, and for the Site view the newest
    sample time it holds."""

    seq: int = 0
    t: int | None = None


def status(model: ViewModel, source: Source, feed: FeedState) -> Payload:
    return {
        "mode": source.mode,
        "source": source.description,
        "loading": feed.loading,
        "progress": round(feed.progress, 3),
        "waiting_for": list(feed.waiting_for),
        "error": feed.error,
        "now": model.now(),
        "window_s": model.window_s,
        "fleet_ids": sorted(model.fleet_ids),
        "stats": model.stats.as_json(),
        "seq": model.seq,
    }


def fleet_view(model: ViewModel, cursor: Cursor) -> tuple[Payload, Cursor]:
    horizon = model.horizon()
    points = [p.as_json() for p in model.fleet if p.seq > cursor.seq and p.t >= horizon]
    verdicts = []
    for verdict in reversed(model.verdict_points):  # appended in seq order
        if verdict.seq <= cursor.seq or verdict.t < horizon:
            break
        verdicts.append(verdict.as_json())
    verdicts.reverse()
    latest = model.fleet[-1].as_json() if model.fleet else None
    payload: Payload = {
        "points": points,
        "verdicts": verdicts,
        "latest": latest,
        "per_oem": sorted(model.per_oem.values(), key=lambda r: str(r["oem"])),
        "products": model.products(),
        "sites": model.site_counts(),
        "alerts": [a.as_json() for a in list(model.acts.alerts)[-5:]],
        "window_s": model.fleet_window_s,
    }
    return payload, Cursor(model.seq)


def sites_view(model: ViewModel, cursor: Cursor) -> tuple[Payload, Cursor]:
    """Rows as lists in ``fields`` order: 10,000 rows are 1.5 MB of JSON, not 4 MB."""
    rows = [s.row_values() for s in model.sites.values() if s.version > cursor.seq]
    payload = {"fields": ROW_FIELDS, "rows": rows, "counts": model.site_counts()}
    return payload, Cursor(model.seq)


@dataclass(frozen=True)
class TimeRange:
    """The Site view's time range (``#/site/<id>?from=...&to=...``, as an audit report
    links it), µs since the epoch; either end may be open."""

    from_us: int | None = None
    to_us: int | None = None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> TimeRange:
        """From the ``from``/``to`` parameters: ISO-8601 (``2026-09-21T14:15:00Z``, UTC when
        no offset is given) or µs since the epoch; a bad value is a :class:`ValueError`."""
        got = cls(_instant(query.get("from"), "from"), _instant(query.get("to"), "to"))
        if got.from_us is not None and got.to_us is not None and got.to_us <= got.from_us:
            raise ValueError("the time range's 'to' must be after its 'from'")
        return got

    @property
    def given(self) -> bool:
        return self.from_us is not None or self.to_us is not None

    def holds(self, t_us: int) -> bool:
        return (self.from_us is None or t_us >= self.from_us) and (
            self.to_us is None or t_us <= self.to_us
        )


def _instant(text: str | None, name: str) -> int | None:
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    # a "+02:00" offset arrives as " 02:00" when a query string is decoded as a form
    text = re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{name}' must be an ISO-8601 time (2026-09-21T14:15:00Z) or µs since the epoch, "
            f"got {text!r}"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1e6)


def site_view(
    model: ViewModel, cursor: Cursor, site_id: str, span: TimeRange = TimeRange()
) -> tuple[Payload, Cursor]:
    """One site: its facts, its samples (the window, or ``span`` when given) and timeline."""
    site = model.sites.get(site_id)
    if site is None:
        return {"site": None, "history": None, "timeline": []}, Cursor(model.seq, cursor.t)
    history = site.history
    samples = None
    if history is not None:
        if span.given:  # whatever the model still holds of the range
            samples = history.since(cursor.t, span.from_us, span.to_us)
        else:
            samples = history.since(cursor.t, model.horizon())
    newest = cursor.t
    if samples and samples["t"]:
        newest = int(samples["t"][-1])
    timeline = [
        e.as_json()
        for e in site.timeline
        if e.seq > cursor.seq and (not span.given or span.holds(e.t))
    ]
    payload: Payload = {"site": site.detail(), "history": samples, "timeline": timeline}
    if span.given:
        held = history.first_time if history is not None else None
        payload["range"] = {
            "from": span.from_us,
            "to": span.to_us,
            "held_from": held,
            "partial": held is None or (span.from_us is not None and span.from_us < held),
        }
    return payload, Cursor(model.seq, newest)


def activations_view(
    model: ViewModel, cursor: Cursor, selected: str | None = None
) -> tuple[Payload, Cursor]:
    now = model.now()
    payload: Payload = {
        "activations": model.acts.rows(now, cursor.seq),
        "alerts": [a.as_json() for a in model.acts.alerts if a.seq > cursor.seq],
    }
    if selected is not None:
        ob = model.acts.by_id.get(selected)
        payload["selected"] = selected
        payload["verdicts"] = (
            [v.as_json() for v in ob.verdicts if v.seq > cursor.seq] if ob is not None else []
        )
    return payload, Cursor(model.seq)


ViewFn = Callable[[ViewModel, Cursor, Mapping[str, str]], tuple[Payload, Cursor]]

VIEWS: Mapping[str, ViewFn] = {
    "fleet": lambda m, c, q: fleet_view(m, c),
    "sites": lambda m, c, q: sites_view(m, c),
    "site": lambda m, c, q: site_view(m, c, q.get("site", ""), TimeRange.of(q)),
    "activations": lambda m, c, q: activations_view(m, c, q.get("activation") or None),
}
