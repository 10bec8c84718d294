"""The topic table (contract.topics): rows, names, prefixes and configs; no broker needed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from contract.kafka.admin import create_topics
from contract.kafka.settings import settings_for
from contract.topics import DAY_MS, TOPICS, Topic, TopicError, topic, topic_for_event

EXPECTED = {
    "market.activations": ("fleet_id", "MarketActivation", "delete"),
    "market.fleet-setpoints": ("fleet_id", "FleetSetpoint", "delete"),
    "reserve.assignments": ("fleet_id", "ReserveAssignment", "delete"),
    "site.setpoints": ("site_id", "SiteSetpoint", "delete"),
    "site.commands": ("site_id", "SiteCommand", "delete"),
    "site.command-results": ("site_id", "CommandResult", "delete"),
    "site.telemetry": ("site_id", "SiteTelemetry", "delete"),
    "site.faults": ("site_id", "SiteFault", "compact"),
    "site.device-status": ("site_id", "DeviceStatus", "compact"),
    "fleet.state": ("fleet_id", "FleetState", "delete"),
    "compliance.verdicts": ("fleet_id", "ComplianceVerdict", "delete"),
    "deadletter": (None, "DeadLetter", "delete"),
}


def test_the_table() -> None:
    assert {t.name: (t.key_field, t.value_event, t.cleanup_policy) for t in TOPICS} == EXPECTED
    assert topic("site.faults").configs() == {"cleanup.policy": "compact"}
    assert topic("site.telemetry").configs() == {
        "cleanup.policy": "delete",
        "retention.ms": str(3 * DAY_MS),
    }
    assert topic_for_event("SiteCommand").name == "site.commands"


def test_the_module_imports_no_kafka() -> None:
    probe = "import sys, contract.topics; print(sorted(m for m in sys.modules if 'kafka' in m))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_prefix() -> None:
    assert topic("site.telemetry").full_name("replay-42.") == "replay-42.site.telemetry"
    assert topic("site.telemetry").full_name() == "site.telemetry"
    with pytest.raises(TopicError, match="illegal topic name"):
        topic("site.telemetry").full_name("bad prefix/")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"name": "a b"}, "illegal topic name"),
        ({"partitions": 0}, "partitions must be >= 1"),
        ({"cleanup_policy": "compact"}, "compacted topic has no retention_ms"),
    ],
)
def test_bad_rows(kwargs: dict[str, object], says: str) -> None:
    row: dict[str, object] = {
        "name": "x",
        "key_field": "site_id",
        "value_event": "SiteFault",
        "partitions": 1,
        **kwargs,
    }
    with pytest.raises(TopicError, match=says):
        Topic(**row)  # type: ignore[arg-type]  # rows built from a table of bad values


def test_unknown_lookups() -> None:
    with pytest.raises(TopicError, match="unknown topic"):
        topic("site.nope")
    with pytest.raises(TopicError, match="0 topics carry 'Nope'"):
        topic_for_event("Nope")


@pytest.mark.parametrize(
    ("partitions", "replication", "says"),
    [(0, 1, "partitions must be >= 1"), (None, 0, "replication factor must be >= 1")],
)
def test_create_topics_checks_arguments_before_connecting(
    partitions: int | None, replication: int, says: str
) -> None:
    with pytest.raises(TopicError, match=says):
        asyncio.run(
            create_topics(
                settings_for("127.0.0.1:1"), partitions=partitions, replication_factor=replication
            )
        )


def test_key_of() -> None:
    assert topic("site.telemetry").key_of({"site_id": "site-0001", "oem": "x"}) == b"site-0001"
    assert topic("fleet.state").key_of({"fleet_id": "se3"}) == b"se3"
    assert topic("deadletter").key_of({"source_topic": "x"}) is None
    with pytest.raises(TopicError, match="no site_id to key by"):
        topic("site.faults").key_of({"fleet_id": "se3"})
