"""Outgoing events: encode with the project codec and append to the durable outbox.

Every event the bridge produces goes through the outbox, connected or not, so live events can
never overtake buffered ones; a flusher sends the outbox to Kafka in order (``runtime``).
CommandResult and SiteFault are critical (never dropped); telemetry and status are bulk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract.codec import Codec, default_codec
from contract.topics import topic_for_event
from edge.bridge.events import COMMAND, FAULT, RESULT, STATUS, TELEMETRY
from edge.bridge.outbox import Outbox

DEAD_LETTER = "DeadLetter"


@dataclass(frozen=True)
class BridgeTopics:
    """Kafka topics the bridge reads and writes: names from the topic table (contract.topics);
    ``prefix`` namespaces them (replay copies, tests)."""

    commands: str = topic_for_event(COMMAND).name
    telemetry: str = topic_for_event(TELEMETRY).name
    faults: str = topic_for_event(FAULT).name
    results: str = topic_for_event(RESULT).name
    status: str = topic_for_event(STATUS).name
    deadletters: str = topic_for_event(DEAD_LETTER).name
    prefix: str = ""

    def for_event(self, event_name: str) -> str:
        by_event = {
            RESULT: self.results,
            TELEMETRY: self.telemetry,
            FAULT: self.faults,
            STATUS: self.status,
        }
        return self.prefix + by_event[event_name]

    @property
    def command_topic(self) -> str:
        return self.prefix + self.commands

    def telemetry_topic(self) -> str:
        return self.prefix + self.telemetry

    def dead_letter_topic(self) -> str:
        return self.prefix + self.deadletters

    def outgoing(self) -> list[str]:
        return [
            self.prefix + t
            for t in (self.telemetry, self.faults, self.results, self.status, self.deadletters)
        ]


CRITICAL_EVENTS = frozenset({RESULT, FAULT})


class EventSink:
    """Encode + append. ``emit`` returns the event id and the encoded value."""

    def __init__(self, outbox: Outbox, topics: BridgeTopics, codec: Codec | None = None) -> None:
        self.outbox = outbox
        self.topics = topics
        self.codec = codec or default_codec()
        self.emitted: dict[str, int] = {}

    def emit(self, event_name: str, record: Mapping[str, Any]) -> tuple[str, bytes]:
        value = self.codec.encode(event_name, record)
        event_id = str(record["event_id"])
        self.append(event_name, str(record["site_id"]), event_id, value)
        return event_id, value

    def append(self, event_name: str, site_id: str, event_id: str, value: bytes) -> None:
        """Append an already encoded event (also used to re-send a stored CommandResult)."""
        self.outbox.append(
            self.topics.for_event(event_name),
            site_id.encode(),
            event_id,
            value,
            critical=event_name in CRITICAL_EVENTS,
        )
        self.emitted[event_name] = self.emitted.get(event_name, 0) + 1

    def dead_letter(self, record: Mapping[str, Any]) -> str:
        """Append a DeadLetter record (critical lane: never dropped); its event id."""
        value = self.codec.encode(DEAD_LETTER, record)
        event_id = str(record["event_id"])
        self.outbox.append(
            self.topics.dead_letter_topic(),
            record["key"] or b"",
            event_id,
            value,
            critical=True,
        )
        self.emitted[DEAD_LETTER] = self.emitted.get(DEAD_LETTER, 0) + 1
        return event_id
