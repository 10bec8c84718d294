"""The gateway's routing, table-driven and with hypothesis: good uplinks go to their Kafka
topic unchanged and keyed by site; everything else becomes a dead letter with the reason and
the MQTT topic; nothing raises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.codec import default_codec
from contract.testing.strategies import site_telemetry_example
from flowerhub.gateway.routing import (
    GatewayRejectError,
    Rejected,
    SiteMismatchError,
    ToKafka,
    route_command,
    route_uplink,
)

CODEC = default_codec()
NOW = 1_800_000_000_000_000
TELEMETRY = CODEC.encode("SiteTelemetry", site_telemetry_example(site_id="se-1"))


def command(site_id: str = "se-1", valid_s: float | None = 30.0) -> dict[str, Any]:
    t = datetime.fromtimestamp(NOW / 1e6, UTC)
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": t,
        "site_id": site_id,
        "command_id": "c-1",
        "kind": "SET_POWER",
        "power_kw": 2.0,
        "valid_until": None if valid_s is None else t + timedelta(seconds=valid_s),
        "issued_by": "test",
    }


def route(topic: str, payload: bytes) -> ToKafka | Rejected:
    return route_uplink(topic, payload, CODEC, consumer="gateway@t", now_us=NOW, prefix="p.")


def test_a_good_uplink_goes_to_its_topic_unchanged_and_keyed_by_site() -> None:
    out = route("fh/v1/site/se-1/telemetry", TELEMETRY)
    assert out == ToKafka("p.site.telemetry", b"se-1", TELEMETRY)


@pytest.mark.parametrize(
    ("topic", "payload", "error_type", "reason"),
    [
        ("fh/v1/site/se-1/telemetry", b"garbage", "BadMagicError", ""),
        ("fh/v1/site/se-1/telemetry", TELEMETRY[:-7], "", ""),
        (
            "fh/v1/site/se-1/telemetry",
            CODEC.encode("SiteCommand", command()),
            "WrongChannelError",
            "carries SiteTelemetry, got a SiteCommand",
        ),
        (
            "fh/v1/site/se-2/telemetry",
            TELEMETRY,
            "SiteMismatchError",
            "topic names site 'se-2', the SiteTelemetry names 'se-1'",
        ),
        ("fh/v1/site/se-1/commands", TELEMETRY, "WrongChannelError", "not an uplink channel"),
        ("fh/v1/site/se-1/metrics", TELEMETRY, "BadTopicError", "unknown channel"),
        ("elsewhere/x", TELEMETRY, "BadTopicError", "is not fh/v1/site"),
        ("fh/v1/site/se-1/telemetry", b"", "", ""),
    ],
    # stable ids: a payload holds a random event id, and xdist workers must collect the same
    ids=[
        "garbage",
        "truncated",
        "command-on-telemetry",
        "site-mismatch",
        "uplink-on-commands",
        "unknown-channel",
        "foreign-topic",
        "empty",
    ],
)
def test_bad_uplinks_become_dead_letters_with_reason_and_topic(
    topic: str, payload: bytes, error_type: str, reason: str
) -> None:
    out = route(topic, payload)
    assert isinstance(out, Rejected)
    rec = out.record
    assert out.topic == "p.deadletter"
    assert rec["source_topic"] == f"mqtt:{topic}"
    assert (rec["partition"], rec["offset"]) == (-1, -1)
    assert rec["original"] == payload
    assert rec["consumer"] == "gateway@t"
    assert rec["reason"]
    if error_type:
        assert rec["error_type"] == error_type
    assert reason in rec["reason"]
    CODEC.encode("DeadLetter", rec)  # a valid DeadLetter event
    again = route(topic, payload)
    assert isinstance(again, Rejected)
    assert again.record["event_id"] == rec["event_id"]  # a redelivery: the same dead letter


@given(st.text(max_size=40), st.binary(max_size=200))
def test_no_topic_or_payload_makes_routing_raise(topic: str, payload: bytes) -> None:
    out = route(topic, payload)
    assert isinstance(out, (ToKafka, Rejected))
    if isinstance(out, ToKafka):
        assert out.value == payload


@given(st.binary(min_size=1, max_size=len(TELEMETRY) - 1))
def test_any_prefix_of_a_good_event_is_dead_lettered(cut: bytes) -> None:
    out = route("fh/v1/site/se-1/telemetry", TELEMETRY[: len(cut)])
    assert isinstance(out, Rejected)


@pytest.mark.parametrize(
    ("valid_s", "expiry"),
    [(30.0, 30), (0.2, 1), (-60.0, 1), (None, None), (3600.5, 3601)],
)
def test_a_command_expires_on_the_broker_with_its_validity(
    valid_s: float | None, expiry: int | None
) -> None:
    rec = command(valid_s=valid_s)
    out = route_command(rec, b"se-1", b"bytes", now_us=NOW)
    assert out.topic == "fh/v1/site/se-1/commands"
    assert out.payload == b"bytes"
    assert out.expiry_s == expiry
    assert (out.site_id, out.command_id) == ("se-1", "c-1")


def test_a_command_keyed_for_another_site_is_refused() -> None:
    with pytest.raises(SiteMismatchError, match="Kafka key 'se-2' but the command names 'se-1'"):
        route_command(command(), b"se-2", b"x", now_us=NOW)
    with pytest.raises(GatewayRejectError, match="site id"):
        route_command(command(site_id="a/b"), None, b"x", now_us=NOW)
    with pytest.raises(GatewayRejectError, match="empty"):
        route_command(None, None, b"", now_us=NOW)
