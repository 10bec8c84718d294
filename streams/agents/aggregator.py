"""Telemetry agent: ``site.telemetry`` -> ``fleet.state`` (1 s and 10 s windows) + site book.

One decode per telemetry event feeds both the event-time tumbling windows
(``fleet_aggregation.TumblingWindows``, one per ``settings.aggregation.windows_s``) and the
worker's :class:`~streams.agents.sitebook.SiteBook` (the allocator's and compliance's view of
the sites). A window's FleetState is sent once, when the watermark passes its end plus the
grace period. Windows are memory only: a restart loses the open windows (at most the longest
window, 10 s); their event ids are deterministic (fleet, window length, start), so a window
emitted twice around a restart is recognisable downstream. Fleet-wide, so the fleet app
runs as one worker (see ``sitebook``).

Hot path: the raw codec (int microseconds, str uuids), then
``records_site.telemetry_plainly_valid`` (types are the schema's after decoding; only the
semantic checks remain), one ``SiteSample`` shared by both window lengths, and the decoded
dict kept by the book as it is. Any record that check does not accept takes the full
``SiteTelemetry.from_record`` path: the precise typed error (dead letter) or the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import StreamT

from streams.agents.base import AgentContext, decode_raw_value, expect
from streams.agents.sitebook import SiteBook
from streams.steps.fleet_aggregation import (
    FleetAggregator,
    TumblingWindows,
    sample_of,
    sample_of_plain,
)
from streams.steps.records_fleet import FleetState
from streams.steps.records_site import telemetry_plainly_valid

NAME = "fleet-aggregator"
_ACCEPTS = frozenset({"SiteTelemetry"})


class AggregatorAgent:
    def __init__(self, ctx: AgentContext, book: SiteBook) -> None:
        self.ctx = ctx
        self.book = book
        agg = ctx.settings.aggregation
        self.windows = [
            TumblingWindows(FleetAggregator(ctx.settings.fleet_id, w), agg.grace_s)
            for w in agg.windows_s
        ]

    def add(self, record: dict[str, Any]) -> Sequence[FleetState]:
        """Fold one decoded telemetry record in; the FleetStates of the windows it closed.

        ``record`` as the raw codec decodes it takes the fast path (and is kept by the book:
        the caller must not change it afterwards); any other spelling (e.g. the default
        codec's datetimes) is validated and converted by ``SiteTelemetry.from_record``.
        ``InvalidRecordError`` when it is not a valid SiteTelemetry.
        """
        if telemetry_plainly_valid(record):
            sample = sample_of_plain(record)
            site_id: str = record["site_id"]
            self.book.update_plain_telemetry(site_id, sample.event_time, record)
        else:
            telemetry = self.book.update_telemetry(record)  # raises the precise error
            sample, site_id = sample_of(telemetry), telemetry.site_id
        closed: Sequence[FleetState] = ()
        for windows in self.windows:  # validated once, one sample for every window length
            more = windows.add_sample(site_id, sample)
            if more:
                closed = [*closed, *more]
        return closed

    async def process(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_raw_value(event)
                expect(name, _ACCEPTS, event.message.topic)
                closed = self.add(record)
            except Exception as exc:  # bad input (EventError) or a step bug: never fatal
                await self.ctx.dead_letter(event, exc, NAME)
                continue
            for state in closed:
                await self.ctx.send("fleet.state", "FleetState", state.to_record())


def register(ctx: AgentContext, book: SiteBook) -> AggregatorAgent:
    agent = AggregatorAgent(ctx, book)
    ctx.app.agent(ctx.topic("site.telemetry"), name=NAME)(agent.process)
    return agent
