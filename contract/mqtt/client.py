"""The project's asyncio MQTT v5 client: paho-mqtt driven by the running event loop.

Why paho-mqtt (Eclipse, the reference Python client) and not aiomqtt: the gateway must send
an uplink message's PUBACK only after Kafka acknowledged the record, and paho 2.x has
application-controlled acknowledgements (``manual_ack=True`` + ``Client.ack``); aiomqtt
(itself a wrapper around paho) does not expose them yet (aiomqtt issue 345, open). The
event-loop integration is the one aiomqtt uses: paho's socket callbacks register the socket
with the loop's reader/writer, ``loop_misc`` runs once a second for keep-alives.

One :class:`MqttClient` is one connection: a new connection (after a drop) is a new object,
so each reconnect resolves the broker's name again and starts from a clean client state;
the broker's persistent session (``clean_start=False`` + session expiry) is what carries
subscriptions and queued messages across connections.

    client = MqttClient(settings, client_id="se-0001", clean_start=False)
    await client.connect()                       # MqttConnectError says why not
    await client.subscribe(["fh/v1/site/se-0001/commands"])
    code = await client.publish(topic, payload)  # resolves at the broker's PUBACK
    msg = await client.messages.get(); ...; client.ack(msg)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10  # a PUBACK that is still a success
NOT_AUTHORIZED = 0x87
READ_BURST = 256  # packets read per wake-up of the event loop at most


class MqttError(ConnectionError):
    """An MQTT failure; the message says where and why."""


class MqttConnectError(MqttError):
    """Could not connect (nothing listening, TLS refused, CONNACK refused)."""


class MqttDisconnectedError(MqttError):
    """The connection ended before the operation completed."""


class MqttRefusedError(MqttError):
    """The broker refused a publish or subscription (e.g. 0x87 not authorized)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    expiry_s: int | None  # the message expiry interval left when the broker sent it


class _TrackingContext(ssl.SSLContext):
    """An SSL context that remembers the sockets it wrapped (to close them on failure)."""

    opened: list[ssl.SSLSocket]

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        if not hasattr(self, "opened"):
            self.opened = []
        self.opened.append(sock)
        return sock


def _code(rc: ReasonCode | int) -> int:
    return rc.value if isinstance(rc, ReasonCode) else int(rc)


def _reason(rc: ReasonCode | int) -> str:
    return f"{rc} (0x{_code(rc):02x})" if isinstance(rc, ReasonCode) else f"code {rc}"


class MqttClient:
    """One MQTT v5 connection over TLS with a client certificate (see module doc)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        clean_start: bool = False,
        session_expiry_s: int | None = None,
        manual_ack: bool = False,
        receive_maximum: int | None = None,
        max_inflight: int = 100,
        queue_size: int = 0,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.clean_start = clean_start
        self.session_expiry_s = (
            settings.session_expiry_s if session_expiry_s is None else session_expiry_s
        )
        self.receive_maximum = receive_maximum
        self.messages: asyncio.Queue[MqttMessage] = asyncio.Queue(queue_size)
        self.session_present = False
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[tuple[int, bool]] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._pubs: dict[int, asyncio.Future[int]] = {}
        self._subs: dict[int, asyncio.Future[list[int]]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
        )
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        ctx = _TrackingContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and name
        ctx.load_verify_locations(cafile=str(settings.ca_file))
        if settings.cert_file is not None and settings.key_file is not None:
            ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.opened = []
        c.tls_set_context(ctx)
        self._ctx = ctx
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_unsubscribe = self._on_subscribe  # the same shape: mid, reason codes
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._c = c

    # ------------------------------------------------------------ event loop glue
    def _threadsafe(self, fn: Any, *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _read(self) -> None:
        """Read what the socket holds, up to READ_BURST packets per wake-up: paho reads one
        packet per call, and a wake-up per packet of the event loop caps a busy subscriber
        near 1,000 messages/s here. TLS: decrypted bytes paho has not parsed yet sit in the
        SSL buffer, where the selector never sees them (``pending()``)."""
        sock = self._sock
        for _ in range(READ_BURST):
            rc = self._c.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None or self._sock is not sock:
                return
            if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return

    def _on_socket_open(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        with contextlib.suppress(OSError):  # small packets (commands, acks) leave at once
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def add() -> None:
            self._sock = sock
            self._loop.add_reader(sock, self._read)
            self._misc = self._loop.create_task(
                self._misc_loop(), name=f"mqtt-misc:{self.client_id}"
            )

        self._threadsafe(add)

    def _on_socket_close(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        def remove() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            self._sock = None

        self._threadsafe(remove)

    def _on_register_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._loop.add_writer, sock, self._c.loop_write)

    def _on_unregister_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        def remove() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(sock)

        self._threadsafe(remove)

    async def _misc_loop(self) -> None:
        """Keep-alive pings and the broker's silence check, once a second."""
        while True:
            if self._c.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            await asyncio.sleep(1.0)

    # --------------------------------------------------------------- callbacks
    def _on_connect(self, _c: paho.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        def done() -> None:
            if not self._connack.done():
                self._connack.set_result((_code(rc), bool(flags.session_present)))

        self._threadsafe(done)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        def done() -> None:
            why = _reason(rc)
            if not self._connack.done():
                self._connack.set_exception(
                    MqttConnectError(f"{self.settings.address}: connection closed: {why}")
                )
            if not self.closed.done():
                self.closed.set_result(why)
            error = MqttDisconnectedError(f"{self.settings.address}: disconnected: {why}")
            waiting: list[asyncio.Future[Any]] = [*self._pubs.values(), *self._subs.values()]
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(error)
            self._pubs.clear()
            self._subs.clear()
            if self._misc is not None:
                self._misc.cancel()
            self._close_sockets(sockpair_only=True)  # paho closed the socket itself

        self._threadsafe(done)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        fut = self._pubs.pop(mid, None)
        if fut is None or fut.done():
            return
        code = _code(rc)
        if code >= 0x80:
            fut.set_exception(MqttRefusedError(f"publish refused: {_reason(rc)}", code))
        else:
            fut.set_result(code)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        fut = self._subs.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result([_code(c) for c in codes])

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        expiry = getattr(msg.properties, "MessageExpiryInterval", None)
        self.messages.put_nowait(
            MqttMessage(msg.topic, bytes(msg.payload), msg.qos, msg.mid, msg.retain, expiry)
        )

    # ------------------------------------------------------------------- API
    async def connect(self) -> bool:
        """Connect (TLS, then CONNECT/CONNACK); returns whether the broker kept a session."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = self.session_expiry_s
        if self.receive_maximum is not None:
            props.ReceiveMaximum = self.receive_maximum
        where = self.settings.address
        timeout = self.settings.connect_timeout_s

        def blocking() -> None:
            self._c.connect(
                self.settings.host,
                self.settings.port,
                keepalive=self.settings.keepalive_s,
                clean_start=self.clean_start,
                properties=props,
            )

        try:
            await asyncio.wait_for(self._loop.run_in_executor(None, blocking), timeout)
            code, present = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except ssl.SSLCertVerificationError as exc:
            await self._abort()
            raise MqttConnectError(
                f"{where}: the broker's certificate is not trusted by {self.settings.ca_file} "
                f"({exc.verify_message})"
            ) from exc
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            await self._abort()
            raise MqttConnectError(
                f"{where}: TLS handshake refused ({exc}); is the client certificate "
                "signed by the broker's CA, and is this a TLS listener?"
            ) from exc
        except TimeoutError as exc:
            await self._abort()
            raise MqttConnectError(f"{where}: no CONNACK within {timeout:.0f} s") from exc
        except MqttConnectError as exc:
            await self._abort()
            if self.settings.cert_file is None:
                raise MqttConnectError(
                    f"{exc}; the broker wants a client certificate (cert_file/key_file)"
                ) from exc
            raise
        except OSError as exc:
            await self._abort()
            raise MqttConnectError(f"{where}: cannot connect ({exc})") from exc
        if code >= 0x80:
            await self._abort()
            raise MqttConnectError(f"{where}: CONNECT refused by the broker (0x{code:02x})")
        self.session_present = present
        return present

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._c.disconnect()
        self._close_sockets()
        if self._misc is not None:
            self._misc.cancel()

    def _close_sockets(self, sockpair_only: bool = False) -> None:
        """paho keeps its socket after a refused CONNACK, drops (unclosed) the one whose TLS
        handshake failed, and keeps its wake-up socket pair after every connection; its
        public API closes none of them."""
        with contextlib.suppress(Exception):
            self._c._reset_sockets(sockpair_only=sockpair_only)
        if not sockpair_only:
            for sock in self._ctx.opened:
                sock.close()
            self._ctx.opened.clear()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, expiry_s: int | None = None
    ) -> asyncio.Future[int]:
        """Send; the future resolves with the PUBACK's reason code (0 or 0x10) at QoS 1, or
        fails with MqttRefusedError (>= 0x80) or MqttDisconnectedError."""
        fut: asyncio.Future[int] = self._loop.create_future()
        if self.closed.done():
            fut.set_exception(MqttDisconnectedError(f"{self.settings.address}: not connected"))
            return fut
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: untyped
            props.MessageExpiryInterval = max(1, int(expiry_s))
        info = self._c.publish(topic, payload, qos=qos, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            fut.set_exception(
                MqttDisconnectedError(f"{self.settings.address}: publish failed: {info.rc}")
            )
        elif qos == 0:
            fut.set_result(0)
        else:
            self._pubs[info.mid] = fut
        return fut

    async def subscribe(self, filters: Sequence[str], *, qos: int = 1) -> list[int]:
        """Subscribe; raises MqttRefusedError when the broker refused any filter."""
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        rc, mid = self._c.subscribe([(f, SubscribeOptions(qos=qos)) for f in filters])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttDisconnectedError(f"{self.settings.address}: subscribe failed: {rc}")
        self._subs[mid] = fut
        codes = await asyncio.wait_for(fut, self.settings.connect_timeout_s)
        refused = [f"{f} (0x{c:02x})" for f, c in zip(filters, codes, strict=False) if c >= 0x80]
        if refused:
            raise MqttRefusedError(f"subscription refused: {', '.join(refused)}", max(codes))
        return codes

    async def unsubscribe(self, filters: Sequence[str]) -> list[int]:
        """Unsubscribe (the broker routes nothing more to this session for ``filters``)."""
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        rc, mid = self._c.unsubscribe(list(filters))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttDisconnectedError(f"{self.settings.address}: unsubscribe failed: {rc}")
        self._subs[mid] = fut
        return await asyncio.wait_for(fut, self.settings.connect_timeout_s)

    def ack(self, message: MqttMessage) -> None:
        """Acknowledge a received QoS 1 message (with ``manual_ack``). MQTT wants PUBACKs in
        the order the messages arrived: callers acknowledge in arrival order."""
        if message.qos > 0 and not self.closed.done():
            self._c.ack(message.mid, message.qos)

    @property
    def connected(self) -> bool:
        return self._connack.done() and not self.closed.done()

    async def disconnect(self, *, end_session: bool = False) -> None:
        """A clean DISCONNECT: the session stays for its expiry interval, or ends now with
        ``end_session`` (MQTT v5: session expiry 0 in the DISCONNECT)."""
        if not self.closed.done() and self._sock is not None:
            props = None
            if end_session and self.session_expiry_s:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
                props.SessionExpiryInterval = 0
            self._c.disconnect(properties=props)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.closed), 2.0)
        await self._abort()
        if not self.closed.done():
            self.closed.set_result("closed by us")
