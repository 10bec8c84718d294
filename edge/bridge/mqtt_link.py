"""The bridge's MQTT transport: each site is its own MQTT client (its certificate's CN is
the site id) on the homes' broker; the gateway moves messages to and from Kafka.

- Downlink: each site subscribes to ``fh/v1/site/<site>/commands`` (QoS 1) in a persistent
  session (clean start off, session expiry from the config), so commands published while
  the home was offline arrive when it reconnects; the broker drops those whose message
  expiry (the command's ``valid_until``) passed, and the site controller rejects any that
  still arrive expired, as on Kafka. A command is acknowledged (manual PUBACK, in arrival
  order) only once its outcome is persisted: the same rule as the Kafka offset commit.
- Uplink: the outbox is delivered by :func:`edge.bridge.delivery.deliver_outbox`: each
  record published QoS 1 on the site's own channel, marked delivered at its own PUBACK.
- Reconnect: per site, exponential backoff with full jitter; every attempt is a new client
  that resolves the broker's name again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from contract.errors import EventDecodeError
from contract.mqtt.client import MqttClient, MqttDisconnectedError, MqttError, MqttMessage
from contract.mqtt.layout import CHANNEL_OF, Channel, site_topic
from edge.bridge.config import ConfigError, MqttConfig
from edge.bridge.delivery import deliver_outbox
from edge.bridge.events import COMMAND, FAULT, RESULT, STATUS, TELEMETRY, command_from_record
from edge.bridge.idempotency import Tracking
from edge.bridge.model import BridgeInputError
from edge.bridge.offsets import OffsetError, OffsetTracker
from edge.bridge.outbox import Outbox, OutboxRecord
from edge.bridge.sink import BridgeTopics, EventSink

log = logging.getLogger(__name__)

TRACKING_PREFIX = "mqtt:"


def backoff(low: float, high: float) -> Iterator[float]:
    """Exponential backoff with full jitter: uniform in [low/2, cap], cap doubling to high."""
    cap = low
    while True:
        yield random.uniform(low / 2, cap)
        cap = min(high, cap * 2)


@dataclass
class _Session:
    """One connection of one site: its acknowledgement order."""

    client: MqttClient
    offsets: OffsetTracker = field(default_factory=OffsetTracker)
    messages: dict[int, MqttMessage] = field(default_factory=dict)


class MqttLink:
    def __init__(
        self,
        bridge_id: str,
        config: MqttConfig,
        *,
        site_ids: list[str],
        submit: Callable[[str, Any, Tracking], None],
        sink: EventSink,
        outbox: Outbox,
        stats: Any,
        flush_batch: int = 500,
    ) -> None:
        self.bridge_id = bridge_id
        self.config = config
        self.site_ids = site_ids
        self.submit = submit
        self.sink = sink
        self.outbox = outbox
        self.stats = stats
        self.flush_batch = flush_batch
        self.sessions: dict[str, _Session] = {}
        self._seq: dict[str, int] = dict.fromkeys(site_ids, 0)
        self.ready = asyncio.Event()  # every site connected and subscribed once
        self.connects = 0
        self._channels = self._channel_table(sink.topics)
        for site_id in site_ids:
            for path in config.site_files(site_id):
                if not path.is_file():
                    raise ConfigError(
                        f"site {site_id}",
                        f"no MQTT client certificate file {path} "
                        f"(`flowerhub mqtt certs --site {site_id} --out {config.certs_dir}`)",
                    )
        if not config.ca_file.is_file():
            raise ConfigError("mqtt", f"no CA file {config.ca_file}")

    @staticmethod
    def _channel_table(topics: BridgeTopics) -> dict[str, Channel]:
        """Outbox topic -> channel; also the unprefixed names (an outbox filled under
        another topic prefix still drains to the right channel)."""
        events = (RESULT, TELEMETRY, FAULT, STATUS)
        table = {BridgeTopics().for_event(ev): CHANNEL_OF[ev] for ev in events}
        table.update({topics.for_event(ev): CHANNEL_OF[ev] for ev in events})
        return table

    def _channel(self, topic: str) -> Channel | None:
        found = self._channels.get(topic)
        if found is None:
            found = next((c for t, c in self._channels.items() if topic.endswith("." + t)), None)
        return found

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [*(self._site_forever(s) for s in self.site_ids), self._uplink_forever()]

    # ---------------------------------------------------------------- downlink
    async def _site_forever(self, site_id: str) -> None:
        delays = backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while True:
            client = MqttClient(
                self.config.settings_for(site_id),
                client_id=site_id,
                clean_start=False,
                manual_ack=True,
            )
            try:
                await client.connect()
                await client.subscribe([site_topic(site_id, Channel.COMMANDS)], qos=1)
                session = _Session(client)
                self.sessions[site_id] = session
                self.connects += 1
                self.stats.kafka_up = True  # "the uplink is up": DeviceStatus reads it
                if all(s in self.sessions for s in self.site_ids):
                    self.ready.set()
                delays = backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
                await self._receive(site_id, session)
            except MqttError as exc:
                self.stats.last_kafka_error = f"mqtt {site_id}: {exc}"
                log.warning("bridge %s: site %s: MQTT: %s", self.bridge_id, site_id, exc)
            except Exception as exc:  # a bug must not end the site's link: logged, retried
                self.stats.last_kafka_error = f"mqtt {site_id}: {type(exc).__name__}: {exc}"
                log.exception("bridge %s: site %s: MQTT link failed", self.bridge_id, site_id)
            finally:
                if (
                    self.sessions.get(site_id) is not None
                    and self.sessions[site_id].client is client
                ):
                    del self.sessions[site_id]
                self.stats.kafka_up = bool(self.sessions)  # DeviceStatus: the uplink is up
                with contextlib.suppress(Exception):
                    await client.disconnect()
            await asyncio.sleep(next(delays))

    async def _receive(self, site_id: str, session: _Session) -> None:
        client = session.client
        while True:
            get = asyncio.ensure_future(client.messages.get())
            watched: set[asyncio.Future[Any]] = {get, client.closed}
            try:
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if not get.done() or get.cancelled():
                raise MqttDisconnectedError(f"connection lost: {client.closed.result()}")
            self._on_command(site_id, session, get.result())

    def _on_command(self, site_id: str, session: _Session, msg: MqttMessage) -> None:
        self.stats.consumed += 1
        seq = self._seq[site_id]
        self._seq[site_id] = seq + 1
        session.messages[seq] = msg
        session.offsets.started(0, seq)
        tracking = Tracking(TRACKING_PREFIX + msg.topic, 0, seq)
        try:
            cmd = command_from_record(self.sink.codec.decode_as(COMMAND, msg.payload))
        except (EventDecodeError, BridgeInputError) as exc:
            self.stats.undecodable += 1
            log.warning("bridge: site %s: undecodable command on %s: %s", site_id, msg.topic, exc)
            self.persisted(tracking)
            return
        # A command naming another site reaches this site's gate, which refuses it.
        self.submit(site_id, cmd, tracking)

    def persisted(self, tracking: Tracking) -> None:
        """A command's outcome is durable: acknowledge it (and those before it) to the broker."""
        site_id = tracking.topic.removeprefix(TRACKING_PREFIX).split("/")[3]
        session = self.sessions.get(site_id)
        if session is None or tracking.offset not in session.messages:
            return  # its connection ended; the broker sends it again, idempotency dedupes
        with contextlib.suppress(OffsetError):
            session.offsets.finished(0, tracking.offset)
        upto = session.offsets.committable().get(0)
        if upto is None:
            return
        for seq in sorted(s for s in session.messages if s < upto):
            session.client.ack(session.messages.pop(seq))
            self.stats.commits += 1

    # ------------------------------------------------------------------ uplink
    async def send(self, record: OutboxRecord) -> Awaitable[Any]:
        """The :class:`~edge.bridge.delivery.RecordSender` of the MQTT link."""
        site_id = record.key.decode()
        channel = self._channel(record.topic)
        if channel is None:
            raise MqttError(f"outbox record for {record.topic!r}: no MQTT channel carries it")
        session = self.sessions.get(site_id)
        if session is None or not session.client.connected:
            raise MqttDisconnectedError(f"site {site_id}: not connected to the broker")
        return session.client.publish(site_topic(site_id, channel), record.value, qos=1)

    async def _uplink_forever(self) -> None:
        delays = backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        sent_at_failure = -1
        while True:
            try:
                await deliver_outbox(self.outbox, self, self.stats, batch=self.flush_batch)
            except MqttError as exc:
                self.stats.last_kafka_error = f"mqtt uplink: {exc}"
                log.debug("bridge %s: uplink: %s", self.bridge_id, exc)
            except Exception as exc:  # logged, retried: the outbox keeps every record
                self.stats.last_kafka_error = f"mqtt uplink: {type(exc).__name__}: {exc}"
                log.exception("bridge %s: uplink failed", self.bridge_id)
            if self.stats.sent != sent_at_failure:  # delivered since: start low again
                delays = backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
                sent_at_failure = self.stats.sent
            await asyncio.sleep(next(delays))
