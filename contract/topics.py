"""The topic table: every Kafka topic, its key, its value event and its storage policy.

One row per topic; agents, the archiver, replay and ``flowerhub topics create`` read it.
Topics are created by the project (``contract.kafka.admin.create_topics``), never by broker
auto-creation.
A *prefix* namespaces a whole copy of the table (replay copies, test isolation):
``topic.full_name("replay-42.")`` is ``"replay-42.site.telemetry"``.

Pure data: no Kafka client here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

DAY_MS = 24 * 60 * 60 * 1000
_LEGAL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class TopicError(ValueError):
    """A bad topic name, prefix or setting, or a broker refusing to create a topic."""


def check_topic_name(name: str) -> str:
    """``name`` when Kafka accepts it as a topic name, else TopicError."""
    if not _LEGAL_NAME.match(name):
        raise TopicError(f"illegal topic name {name!r}")
    return name


@dataclass(frozen=True)
class Topic:
    """One topic: key field and value event (``contract/<domain>/<value_event>.avsc``).

    ``key_field`` is the value's field used as the Kafka key (None: the producer passes the
    key through, as ``deadletter`` keeps the original key). ``cleanup_policy="compact"``
    keeps the latest value per key forever; ``"delete"`` keeps ``retention_ms``.
    ``also_carries``: events besides ``value_event`` written into the topic, without a key
    (``site.telemetry``: the streams workers' ``TelemetryWatermark``); a reader that wants
    only ``value_event`` skips them by their event name.
    """

    name: str
    key_field: str | None
    value_event: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int | None = 7 * DAY_MS
    doc: str = ""
    extra_configs: Mapping[str, str] = field(default_factory=dict)
    also_carries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_topic_name(self.name)
        if self.partitions < 1:
            raise TopicError(f"{self.name}: partitions must be >= 1")
        if self.cleanup_policy == "compact" and self.retention_ms is not None:
            raise TopicError(f"{self.name}: a compacted topic has no retention_ms")

    def full_name(self, prefix: str = "") -> str:
        name = f"{prefix}{self.name}"
        if prefix and not _LEGAL_NAME.match(name):
            raise TopicError(f"prefix {prefix!r} makes an illegal topic name {name!r}")
        return name

    def key_of(self, record: Mapping[str, object]) -> bytes | None:
        """The Kafka key of a record of this topic's event (UTF-8 of ``key_field``'s value).

        None for a topic without a key field (the producer passes the original key through).
        """
        if self.key_field is None:
            return None
        value = record.get(self.key_field)
        if not isinstance(value, str) or not value:
            raise TopicError(f"{self.name}: record has no {self.key_field} to key by")
        return value.encode("utf-8")

    def configs(self) -> dict[str, str]:
        """Topic-level broker configs for creation."""
        out: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        out.update(self.extra_configs)
        return out


SITE_PARTITIONS = 12  # keyed by site_id; one Faust worker per partition at most
FLEET_PARTITIONS = 1  # keyed by fleet_id: one fleet, strict order

TOPICS: tuple[Topic, ...] = (
    Topic(
        "market.activations",
        "fleet_id",
        "MarketActivation",
        FLEET_PARTITIONS,
        retention_ms=365 * DAY_MS,
        doc="TSO/market activation orders and test runs.",
    ),
    Topic(
        "market.fleet-setpoints",
        "fleet_id",
        "FleetSetpoint",
        FLEET_PARTITIONS,
        retention_ms=30 * DAY_MS,
        doc="Fleet-level power targets for the virtual battery.",
    ),
    Topic(
        "reserve.assignments",
        "fleet_id",
        "ReserveAssignment",
        FLEET_PARTITIONS,
        retention_ms=365 * DAY_MS,
        doc="Cleared reserve capacity the fleet must hold.",
    ),
    Topic(
        "site.setpoints",
        "site_id",
        "SiteSetpoint",
        SITE_PARTITIONS,
        doc="Allocator output per site, before the setpoint filter.",
    ),
    Topic(
        "site.commands",
        "site_id",
        "SiteCommand",
        SITE_PARTITIONS,
        doc="Filtered commands the edge bridges execute.",
    ),
    Topic(
        "site.command-results",
        "site_id",
        "CommandResult",
        SITE_PARTITIONS,
        doc="What the inverter really did with each command.",
    ),
    Topic(
        "site.telemetry",
        "site_id",
        "SiteTelemetry",
        SITE_PARTITIONS,
        retention_ms=3 * DAY_MS,
        doc="Periodic site measurements (the archiver keeps the long history), and the "
        "watermarks of silent partitions the streams workers write into it.",
        also_carries=("TelemetryWatermark",),
    ),
    Topic(
        "site.faults",
        "site_id",
        "SiteFault",
        SITE_PARTITIONS,
        cleanup_policy="compact",
        retention_ms=None,
        doc="Latest fault state per site.",
    ),
    Topic(
        "site.device-status",
        "site_id",
        "DeviceStatus",
        SITE_PARTITIONS,
        cleanup_policy="compact",
        retention_ms=None,
        doc="Latest edge-link health per site.",
    ),
    Topic(
        "fleet.state",
        "fleet_id",
        "FleetState",
        FLEET_PARTITIONS,
        retention_ms=30 * DAY_MS,
        doc="Fleet aggregates per window.",
    ),
    Topic(
        "compliance.verdicts",
        "fleet_id",
        "ComplianceVerdict",
        FLEET_PARTITIONS,
        retention_ms=365 * DAY_MS,
        doc="Live verdicts of the fleet response against reserve requirements.",
    ),
    Topic(
        "deadletter",
        None,
        "DeadLetter",
        3,
        retention_ms=30 * DAY_MS,
        doc="Undecodable or invalid messages with the reason; keyed by the original key.",
    ),
)

_BY_NAME = {t.name: t for t in TOPICS}


def topic(name: str) -> Topic:
    """The row of a topic (unprefixed name)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise TopicError(f"unknown topic {name!r}; known: {', '.join(_BY_NAME)}") from None


def topic_for_event(value_event: str) -> Topic:
    """The topic carrying ``value_event`` (each event type has exactly one topic; an event a
    topic ``also_carries`` included)."""
    matches = [t for t in TOPICS if value_event in (t.value_event, *t.also_carries)]
    if len(matches) != 1:
        raise TopicError(f"{len(matches)} topics carry {value_event!r}, expected exactly one")
    return matches[0]
