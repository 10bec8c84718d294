"""At most once per command id: duplicate delivery, restart, and a consumer group that lost its
offsets. The simulator's write log proves that no register is written a second time."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from contract.enums import CommandKind
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings
from edge.bridge.model import BridgeCommand
from edge.bridge.sink import BridgeTopics
from edge.sim.battery import BatteryParams
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands, read_events

pytestmark = pytest.mark.integration


def send(h: SimBridge, cmds: list[BridgeCommand]) -> None:
    asyncio.run(produce_commands(h.kafka, h.topics.command_topic, cmds))


def result_events(h: SimBridge, command_id: str, at_least: int) -> list[dict[str, Any]]:
    def done(recs: list[dict[str, Any]]) -> bool:
        return sum(bool(r["command_id"] == command_id) for r in recs) >= at_least

    topic = h.topics.for_event("CommandResult")
    recs = asyncio.run(read_events(h.kafka, topic, done, 30.0))
    return [r for r in recs if r["command_id"] == command_id]


def test_duplicate_delivery_and_restart_never_write_twice(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    topics = BridgeTopics(prefix=f"replay-{uuid.uuid4().hex[:8]}.")
    create_topics(kafka, [topics.command_topic, *topics.outgoing()], 1)
    h = SimBridge(
        [SimSpec("dup", "huawei")],  # no heartbeat writes: the write log is command writes only
        kafka=kafka,
        state=tmp_path,
        topics=topics,
        bridge_id="replay-a",
        telemetry_interval_s=0.25,
        battery=BatteryParams(tau_s=0.3, dead_time_s=0.1),
    )
    with h:
        cmd = new_command("dup", CommandKind.SET_POWER, 1.2, valid_s=300.0)
        send(h, [cmd, cmd])  # the same command delivered twice
        first = result_events(h, cmd.command_id, 1)
        h.drain()
        writes = h.do(lambda: len(h.sims["dup"].write_log))
        assert writes >= 1
        assert first[0]["status"] == "APPLIED"
        result_id = first[0]["event_id"]

        h.stop_bridge()  # process restart, same state dir, same consumer group
        h.start_bridge()
        send(h, [cmd])  # replayed after the restart
        again = result_events(h, cmd.command_id, 2)
        h.drain()
        assert h.do(lambda: len(h.sims["dup"].write_log)) == writes

        h.stop_bridge()  # the consumer group lost its offsets: everything is redelivered
        h.bridge_id = "replay-b"
        h.start_bridge()
        bridge = h.bridge
        assert bridge is not None
        deadline = 30.0
        while bridge.stats.consumed < 3 and deadline > 0:
            h.call(asyncio.sleep(0.1))
            deadline -= 0.1
        h.drain()
        assert bridge.stats.consumed == 3
        assert h.do(lambda: len(h.sims["dup"].write_log)) == writes
        # every result for the command is the same event: consumers deduplicate by event id
        assert {r["event_id"] for r in again} == {result_id}
        assert {r["status"] for r in again} == {"APPLIED"}
