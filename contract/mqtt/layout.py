"""The MQTT topic layout of the homes: which topic carries which event, for which site. Pure.

One tree per site, versioned so a later layout can live beside this one::

    fh/v1/site/<site_id>/commands     downlink: SiteCommand      <- Kafka site.commands
    fh/v1/site/<site_id>/telemetry    uplink:   SiteTelemetry    -> Kafka site.telemetry
    fh/v1/site/<site_id>/faults       uplink:   SiteFault        -> Kafka site.faults
    fh/v1/site/<site_id>/results      uplink:   CommandResult    -> Kafka site.command-results
    fh/v1/site/<site_id>/status       uplink:   DeviceStatus     -> Kafka site.device-status

Why this shape: the site id is one topic level, so the broker's ACL can say "a client may
subscribe to ``fh/v1/site/<its CN>/commands`` and publish to its own uplink channels" with one
pattern line each (Mosquitto's ``%u`` substitution), and the gateway subscribes to each
uplink channel for every site with one ``+`` filter (a shared subscription, so several
gateways split the load). One channel per event type keeps the mapping to Kafka a table
lookup and lets the ACL grant exactly the channels a home may write. The names follow the
event, not the Kafka topic, so the cloud can rename topics without touching home firmware.

Site ids are restricted to ``[A-Za-z0-9._:-]`` (1-64 chars), the bridge config's rule: never
``/``, ``+``, ``#`` or ``$``, so an id is exactly one topic level and can never widen an ACL
pattern. Gateway identities carry an ``@`` (``gateway@<name>``), which no site id may, so no
home certificate can ever be a gateway's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contract.topics import topic_for_event

ROOT = "fh/v1/site"
SITE_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
GATEWAY_PREFIX = "gateway@"
GATEWAY_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,48}$")
SHARE_GROUP = "fh-gateway"


class LayoutError(ValueError):
    """A site id, gateway name or topic that does not fit the layout."""


class Channel(StrEnum):
    COMMANDS = "commands"
    TELEMETRY = "telemetry"
    FAULTS = "faults"
    RESULTS = "results"
    STATUS = "status"


# channel -> the event it carries (one .avsc each)
EVENT_OF: dict[Channel, str] = {
    Channel.COMMANDS: "SiteCommand",
    Channel.TELEMETRY: "SiteTelemetry",
    Channel.FAULTS: "SiteFault",
    Channel.RESULTS: "CommandResult",
    Channel.STATUS: "DeviceStatus",
}
CHANNEL_OF: dict[str, Channel] = {event: channel for channel, event in EVENT_OF.items()}
DOWNLINK: tuple[Channel, ...] = (Channel.COMMANDS,)
UPLINK: tuple[Channel, ...] = (Channel.TELEMETRY, Channel.FAULTS, Channel.RESULTS, Channel.STATUS)


def check_site_id(site_id: str) -> str:
    """``site_id`` when it can be one topic level and a certificate CN, else LayoutError."""
    if not SITE_ID_RE.match(site_id):
        raise LayoutError(
            f"site id {site_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ : - "
            "(one MQTT topic level, never / + # $)"
        )
    return site_id


def gateway_identity(name: str) -> str:
    """The certificate CN (and MQTT client id) of gateway instance ``name``."""
    if not GATEWAY_NAME_RE.match(name):
        raise LayoutError(f"gateway name {name!r} must be 1-48 characters of A-Z a-z 0-9 . _ -")
    return GATEWAY_PREFIX + name


def is_gateway_identity(identity: str) -> bool:
    return identity.startswith(GATEWAY_PREFIX) and bool(
        GATEWAY_NAME_RE.match(identity[len(GATEWAY_PREFIX) :])
    )


def site_topic(site_id: str, channel: Channel) -> str:
    """``fh/v1/site/<site_id>/<channel>``."""
    return f"{ROOT}/{check_site_id(site_id)}/{channel.value}"


def channel_filter(channel: Channel) -> str:
    """The filter matching ``channel`` of every site: ``fh/v1/site/+/<channel>``."""
    return f"{ROOT}/+/{channel.value}"


def shared_filter(channel: Channel, group: str = SHARE_GROUP) -> str:
    """The MQTT v5 shared subscription of the gateways on ``channel``
    (``$share/<group>/fh/v1/site/+/<channel>``): each message goes to one gateway only."""
    return f"$share/{group}/{channel_filter(channel)}"


@dataclass(frozen=True)
class SiteTopic:
    site_id: str
    channel: Channel

    @property
    def event(self) -> str:
        return EVENT_OF[self.channel]

    @property
    def topic(self) -> str:
        return site_topic(self.site_id, self.channel)


def parse_topic(topic: str) -> SiteTopic:
    """The site and channel of a layout topic, else LayoutError saying what is wrong."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != ROOT:
        raise LayoutError(f"topic {topic!r} is not {ROOT}/<site_id>/<channel>")
    site_id, name = parts[3], parts[4]
    check_site_id(site_id)
    try:
        channel = Channel(name)
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise LayoutError(f"topic {topic!r}: unknown channel {name!r} (known: {known})") from None
    return SiteTopic(site_id, channel)


def kafka_topic(channel: Channel, prefix: str = "") -> str:
    """The Kafka topic (from the topic table, under ``prefix``) of a channel's event."""
    return topic_for_event(EVENT_OF[channel]).full_name(prefix)


def acl_lines(gateways: tuple[str, ...] | list[str]) -> list[str]:
    """A Mosquitto ``acl_file`` for the layout (username = certificate CN):

    - every gateway identity may read every uplink channel (its shared subscription) and
      write every site's commands; nothing else;
    - every other client (a home, CN = its site id) may read its own commands and write its
      own uplink channels; nothing else. Subscribing elsewhere is refused (SUBACK 0x87),
      publishing elsewhere is refused (PUBACK 0x87 at QoS 1; dropped at QoS 0).
    """
    lines = ["# generated by flowerhub (contract.mqtt.layout.acl_lines): do not edit", ""]
    for name in gateways:
        identity = gateway_identity(name)
        lines.append(f"user {identity}")
        lines += [f"topic read {channel_filter(c)}" for c in UPLINK]
        lines += [f"topic write {channel_filter(c)}" for c in DOWNLINK]
        lines.append("")
    lines.append("# homes: CN = site id")
    lines += [f"pattern read {ROOT}/%u/{c.value}" for c in DOWNLINK]
    lines += [f"pattern write {ROOT}/%u/{c.value}" for c in UPLINK]
    return [*lines, ""]
