"""Telemetry agent: ``site.telemetry`` -> ``fleet.state`` (1 s and 10 s windows) + site book.

One decode per telemetry event feeds both the event-time tumbling windows
(``fleet_aggregation.TumblingWindows``, one per ``settings.aggregation.windows_s``) and the
worker's :class:`~streams.agents.sitebook.SiteBook` (the allocator's and compliance's view of
the sites). A window's FleetState is sent once, when the watermark passes its end plus the
grace period. Windows are memory only: a restart loses the open windows (at most the longest
window, 10 s); their event ids are deterministic (fleet, window length, start), so a window
emitted twice around a restart is recognisable downstream. Fleet-wide, so the fleet app
runs as one worker (see ``sitebook``).
"""

from __future__ import annotations

from typing import Any

from faust.types import StreamT

from streams.agents.base import AgentContext, decode_value, expect
from streams.agents.sitebook import SiteBook
from streams.steps.fleet_aggregation import FleetAggregator, TumblingWindows
from streams.steps.records_fleet import FleetState

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

    def add(self, record: dict[str, Any]) -> list[FleetState]:
        """Fold one decoded telemetry record in; the FleetStates of the windows it closed."""
        telemetry = self.book.update_telemetry(record)  # validated once, used by all windows
        out: list[FleetState] = []
        for windows in self.windows:
            out.extend(windows.add(telemetry))
        return out

    async def process(self, stream: StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                name, record = decode_value(event)
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
