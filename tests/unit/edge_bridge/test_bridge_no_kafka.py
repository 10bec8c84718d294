"""No broker at all: the bridge still polls and controls its sites and keeps every event in the
outbox (Kafka is only where events go, never a precondition)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contract.kafka.settings import settings_for
from edge.bridge.events import TELEMETRY
from edge.bridge.outbox import Outbox
from edge.bridge.runtime import Bridge, BridgeStats
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec, free_port


def test_bridge_serves_sites_while_kafka_is_unreachable(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    h = SimBridge(
        [SimSpec("nk", "huawei")],
        kafka=settings_for(nowhere),
        state=tmp_path,
        topics=BridgeTopics(),
        telemetry_interval_s=0.1,
    )
    h.start_sims()
    try:

        async def run_for(seconds: float) -> tuple[int, int, BridgeStats]:
            bridge = Bridge(h.config(), topics=h.topics)
            stop = asyncio.Event()
            task = asyncio.create_task(bridge.run(stop))
            await asyncio.sleep(seconds)
            depth, emitted = bridge.outbox.depth, bridge.sink.emitted.get(TELEMETRY, 0)
            stop.set()
            await task
            return depth, emitted, bridge.stats

        depth, emitted, stats = h.call(run_for(5.0))
    finally:
        h.close()
    assert emitted >= 5
    assert depth >= emitted  # telemetry plus device status, nothing sent, nothing lost
    assert stats.sent == 0
    assert stats.last_kafka_error
    assert "nothing listens" in stats.last_kafka_error  # the reason, not just "no bootstrap"
    with Outbox(tmp_path / "outbox") as box:  # and it is all still on disk after the stop
        assert box.depth == depth
        assert box.dropped == 0
