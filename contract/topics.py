"""The topic table: every Kafka topic, its key, its value event and its storage policy.

One row per topic; agents, the archiver, replay and ``flowerhub topics create`` read it.
Topics are created by the project (``create_topics``), never by broker auto-creation.
A *prefix* namespaces a whole copy of the table (replay copies, test isolation):
``topic.full_name("replay-42.")`` is ``"replay-42.site.telemetry"``.

Pure data at import: aiokafka is imported only inside ``create_topics``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

DAY_MS = 24 * 60 * 60 * 1000
TOPIC_ALREADY_EXISTS = 36  # Kafka error code
_LEGAL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class TopicError(ValueError):
    """A bad topic name, prefix or setting, or a broker refusing to create a topic."""


@dataclass(frozen=True)
class Topic:
    """One topic: key field and value event (``contract/<domain>/<value_event>.avsc``).

    ``key_field`` is the value's field used as the Kafka key (None: the producer passes the
    key through, as ``deadletter`` keeps the original key). ``cleanup_policy="compact"``
    keeps the latest value per key forever; ``"delete"`` keeps ``retention_ms``.
    """

    name: str
    key_field: str | None
    value_event: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int | None = 7 * DAY_MS
    doc: str = ""
    extra_configs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _LEGAL_NAME.match(self.name):
            raise TopicError(f"illegal topic name {self.name!r}")
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
        doc="Periodic site measurements (the archiver keeps the long history).",
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
    """The topic carrying ``value_event`` (each event type has exactly one topic)."""
    matches = [t for t in TOPICS if t.value_event == value_event]
    if len(matches) != 1:
        raise TopicError(f"{len(matches)} topics carry {value_event!r}, expected exactly one")
    return matches[0]


@dataclass(frozen=True)
class CreateReport:
    """What ``create_topics`` did: full (prefixed) names."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


async def create_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    partitions: int | None = None,
    replication_factor: int = 1,
    topics: Iterable[Topic] = TOPICS,
    request_timeout_s: float = 30.0,
) -> CreateReport:
    """Create the table's topics (idempotent: existing topics are reported, not an error).

    ``partitions`` overrides every row's partition count (e.g. 1 for a quick test broker).
    """
    if partitions is not None and partitions < 1:
        raise TopicError(f"partitions must be >= 1, got {partitions}")
    if replication_factor < 1:
        raise TopicError(f"replication factor must be >= 1, got {replication_factor}")
    rows = list(topics)
    names = [t.full_name(prefix) for t in rows]
    if not rows:
        return CreateReport((), ())

    # aiokafka ships no py.typed (untyped unless the project config says otherwise)
    from aiokafka.admin import (  # type: ignore[import-untyped, unused-ignore]
        AIOKafkaAdminClient,
        NewTopic,
    )

    new = [
        NewTopic(  # type: ignore[no-untyped-call, unused-ignore]  # untyped aiokafka
            name,
            partitions or row.partitions,
            replication_factor,
            topic_configs=row.configs(),
        )
        for name, row in zip(names, rows, strict=True)
    ]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(request_timeout_s * 1000)
    )
    try:
        await admin.start()
        response = await admin.create_topics(new, timeout_ms=int(request_timeout_s * 1000))
    finally:
        await admin.close()
    created: list[str] = []
    existing: list[str] = []
    failures: list[str] = []
    for entry in response.topic_errors:
        name, code = str(entry[0]), int(entry[1])
        message = entry[2] if len(entry) > 2 else ""
        if code == 0:
            created.append(name)
        elif code == TOPIC_ALREADY_EXISTS:
            existing.append(name)
        else:
            failures.append(f"{name}: error {code} {message}")
    if failures:
        raise TopicError(f"could not create topics on {bootstrap}: {'; '.join(failures)}")
    order = {name: i for i, name in enumerate(names)}
    return CreateReport(
        tuple(sorted(created, key=order.__getitem__)),
        tuple(sorted(existing, key=order.__getitem__)),
    )
