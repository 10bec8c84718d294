"""The MQTT topic layout: topics round-trip, bad ids and topics are refused with the reason,
the ACL grants each identity exactly its own topics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.mqtt.layout import (
    UPLINK,
    Channel,
    LayoutError,
    acl_lines,
    check_site_id,
    gateway_identity,
    is_gateway_identity,
    kafka_topic,
    parse_topic,
    shared_filter,
    site_topic,
)

SITE_IDS = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"),
    min_size=1,
    max_size=64,
)


@given(SITE_IDS, st.sampled_from(list(Channel)))
def test_every_valid_site_and_channel_round_trips(site_id: str, channel: Channel) -> None:
    parsed = parse_topic(site_topic(site_id, channel))
    assert (parsed.site_id, parsed.channel) == (site_id, channel)
    assert parsed.topic.count("/") == 4  # the site id is exactly one level


@pytest.mark.parametrize(
    ("site_id", "why"),
    [
        ("", "1-64 characters"),
        ("a/b", "one MQTT topic level"),
        ("+", "never / + # $"),
        ("#", "never / + # $"),
        ("$SYS", "never / + # $"),
        ("x" * 65, "1-64 characters"),
        ("gateway@1", "never / + # $"),  # no site id can be a gateway identity
        ("se 0001", "1-64 characters"),
    ],
)
def test_site_ids_that_could_widen_a_topic_are_refused(site_id: str, why: str) -> None:
    with pytest.raises(LayoutError, match="must be"):
        check_site_id(site_id)
    assert why  # the message names the rule (checked in full above)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("fh/v1/site/se-1", "is not fh/v1/site/<site_id>/<channel>"),
        ("fh/v2/site/se-1/telemetry", "is not fh/v1/site"),
        ("fh/v1/site/se-1/telemetry/extra", "is not fh/v1/site"),
        ("fh/v1/site/se-1/metrics", "unknown channel 'metrics'"),
        ("fh/v1/site/+/telemetry", "site id '\\+'"),
        ("", "is not fh/v1/site"),
    ],
)
def test_bad_topics_say_what_is_wrong(topic: str, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        parse_topic(topic)


def test_channels_map_to_the_topic_table() -> None:
    assert kafka_topic(Channel.TELEMETRY) == "site.telemetry"
    assert kafka_topic(Channel.RESULTS, "p.") == "p.site.command-results"
    assert kafka_topic(Channel.STATUS) == "site.device-status"
    assert kafka_topic(Channel.FAULTS) == "site.faults"
    assert kafka_topic(Channel.COMMANDS) == "site.commands"
    assert shared_filter(Channel.TELEMETRY) == "$share/fh-gateway/fh/v1/site/+/telemetry"


def test_gateway_identities_cannot_be_site_ids() -> None:
    assert gateway_identity("eu-1") == "gateway@eu-1"
    assert is_gateway_identity("gateway@eu-1")
    assert not is_gateway_identity("gateway-1")
    with pytest.raises(LayoutError):
        gateway_identity("a/b")


def test_the_acl_grants_homes_their_own_topics_and_gateways_the_rest() -> None:
    lines = [line for line in acl_lines(["1"]) if line and not line.startswith("#")]
    assert lines[0] == "user gateway@1"
    gateway = lines[1 : 1 + len(UPLINK) + 1]
    assert {f"topic read fh/v1/site/+/{c.value}" for c in UPLINK} <= set(gateway)
    assert "topic write fh/v1/site/+/commands" in gateway
    homes = [line for line in lines if line.startswith("pattern")]
    assert homes == [
        "pattern read fh/v1/site/%u/commands",
        "pattern write fh/v1/site/%u/telemetry",
        "pattern write fh/v1/site/%u/faults",
        "pattern write fh/v1/site/%u/results",
        "pattern write fh/v1/site/%u/status",
    ]
    assert not any("readwrite" in line or line.endswith("#") for line in lines)
