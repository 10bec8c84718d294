"""A batched aiokafka consumer inside the Faust app: ``getmany`` -> handler -> commit.

Why: Faust 0.15.3 hands every message to an agent through its consumer thread, conductor
and stream, and its consumer awaits ``wait_first(callback(message), suspend_flow.wait())``
per message (two tasks and an ``asyncio.wait`` each): an agent that does nothing took
13-14k events/s on the 2-core bench machine (``cython_optimizations`` on or off), against
0.35-0.57M/s for a raw aiokafka consumer of the same topic. The worker's two bulk inputs
are read here instead, in batches, by a pure or thin batch step: telemetry
(``telemetry_service``) and site setpoints (the setpoint filter: one fleet setpoint fans out
to 10,000 of them at once).

:class:`BatchConsumer` is a ``mode.Service`` registered with the Faust app
(``app.service``): Faust starts it once table recovery is over (``App.on_started``), and
it waits out any later rebalance or recovery of the app's tables before it takes the next
batch, so a handler that reads or writes a Faust table never sees one half-recovered.

It owns an ``AIOKafkaConsumer`` in its own consumer group (``<app_id>-<name>``; the Faust
app's group stays ``<app_id>``) with the settings' bootstrap servers and TLS/SASL, manual
commits and ``auto_offset_reset=earliest``. Per batch (at most ``max_records``):

1. the handler gets ``{TopicPartition: [records]}`` and returns once every output of the
   batch is acknowledged by Kafka;
2. only then are the batch's offsets (last offset + 1 per partition) committed.

A crash between 1 and 2 reads the batch again after the restart (at-least-once; the
handlers' outputs carry deterministic ids, and the setpoint filter's table makes a repeated
setpoint a duplicate). A failed commit (e.g. a rebalance in between) is logged and the
records may be read again. A handler error other than bad input (which handlers turn into
dead letters) crashes the service and, through Faust's service tree, the worker.

Shutdown (``on_stop``, before the app's producer stops): no new batch is taken, the batch
in hand finishes (sent, acknowledged, committed), then the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
    RebalanceInProgressError,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]
from mode import Service

from contract.kafka.clients import consumer as new_consumer
from contract.kafka.clients import consumer_options, start
from streams.settings import StreamsSettings

log = logging.getLogger(__name__)

POLL_MS = 200  # longest wait for records; also bounds how long a stop waits for the loop
FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
STOP_TIMEOUT_S = 30.0
RECOVERY_POLL_S = 0.05

#: ``{TopicPartition: records}`` of one ``getmany``
Batches = Mapping[Any, Sequence[Any]]
Handler = Callable[[Batches], Awaitable[object]]


def consumer_group(settings: StreamsSettings, name: str) -> str:
    """A batch consumer's group: ``<app_id>-<name>``."""
    return f"{settings.app_id}-{name}"


def _overrides(settings: StreamsSettings, name: str) -> dict[str, Any]:
    group = consumer_group(settings, name)
    return {
        "group_id": group,
        "client_id": group,
        "session_timeout_ms": 10_000,  # as the app (broker_session_timeout)
        "heartbeat_interval_ms": 3_000,  # as the app (broker_heartbeat_interval)
        "fetch_max_bytes": FETCH_MAX_BYTES,
        "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
    }


def batch_consumer_options(settings: StreamsSettings, name: str) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword options for the batch consumer ``name``: the connection
    factory's (``contract.kafka.clients``: settings, manual commits, earliest) with this
    consumer's group and fetch sizes (holds the SASL password in clear when SASL is on:
    pass it on, never log it)."""
    return consumer_options(settings, **_overrides(settings, name))


class BatchConsumer(Service):
    """Consumes the Kafka topic ``topic`` in batches into ``handler`` (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        *,
        name: str,
        topic: str,
        handler: Handler,
        max_records: int,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.name = name
        self.topic = topic
        self.handler = handler
        self.max_records = max_records
        self.batches = 0  #: batches done (outputs acknowledged, commit attempted)
        self.records = 0  #: records in those batches
        #: the offsets this consumer committed, by ``TopicPartition`` (its lag: ``streams.metrics``)
        self.committed: dict[Any, int] = {}
        self._consumer: Any = None
        self._closing = False
        self._loop_task: asyncio.Task[None] | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        consumer = new_consumer(self.settings, **_overrides(self.settings, self.name))
        await start(consumer, self.settings)
        consumer.subscribe([self.topic])
        self._consumer = consumer
        self._loop_task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._closing = True
        task = self._loop_task
        if task is not None and not task.done():
            _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning(
                    "%s: the batch in hand did not finish in %g s", self.name, STOP_TIMEOUT_S
                )
                task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def group(self) -> str:
        """This consumer's group (``<app_id>-<name>``)."""
        return consumer_group(self.settings, self.name)

    @property
    def kafka_consumer(self) -> Any:
        """The ``AIOKafkaConsumer`` while the service runs, else None."""
        return self._consumer

    def _tables_busy(self) -> bool:
        app = self.app
        return bool(app.rebalancing or app.in_recovery)

    async def _run(self) -> None:
        consumer = self._consumer
        try:
            while not self._closing:
                # Faust keeps these as flags (no event to await for "not rebalancing")
                while self._tables_busy() and not self._closing:  # noqa: ASYNC110
                    await asyncio.sleep(RECOVERY_POLL_S)
                batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=self.max_records)
                if batches:
                    await self.process(batches)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: batch consumer of %s failed", self.name, self.topic)
            await self.crash(exc)

    async def process(self, batches: Batches) -> None:
        """One ``getmany`` result: the handler (outputs acknowledged), then the commit."""
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        await self.handler(batches)
        await self.commit(offsets)
        self.batches += 1
        self.records += sum(len(records) for records in batches.values())

    async def commit(self, offsets: Mapping[Any, int]) -> None:
        if not offsets:
            return
        committed = {TopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
        try:
            await self._consumer.commit(committed)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.warning("%s: offsets not committed (read again later): %r", self.name, exc)
            return
        self.committed.update(committed)
