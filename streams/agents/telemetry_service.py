"""The worker's telemetry hot path: a batched aiokafka consumer of ``site.telemetry``.

Why not a Faust agent: Faust 0.15.3 delivers every message through its consumer, conductor
and stream (two tasks, an ``asyncio.wait`` and about a dozen coroutine steps per event): an
agent doing nothing took 5-11k events/s on the 2-core bench machine, the telemetry agent
2.5-3.4k/s, against 245-310k/s for a raw aiokafka consumer of the same topic. Telemetry is
the one high-rate input (1 Hz per site, and a backlog after an outage), so it is read here
in ``getmany`` batches and handed to the pure step
(:meth:`streams.agents.aggregator.TelemetryAggregator.add_batch`); every other input stays a
Faust agent. Each ``getmany`` (every partition's records, one partition after the
other) is one ``add_batch`` call: the step decodes and aggregates it column-wise in numpy
(``streams.agents.aggregator``), about 1 us per event for batches of 10,000 against 12-17
us per event record by record. Measured (bench_streams ``telemetry_worker``, the real
worker in a child process): 0.62x the raw consumer of the same topic (286k against 465k
events/s, load average 1.0 on 2 cores); record by record it was 0.13-0.21x.

:class:`TelemetryService` is a ``mode.Service`` registered with the Faust app
(``app.service``): it starts with the app once table recovery is over, like the app's
tasks, and stops with it. It owns:

- an ``AIOKafkaConsumer`` in its own consumer group, :func:`group_id` (``<app_id>-telemetry``;
  the Faust app's group stays ``<app_id>``), subscribed to ``<prefix>site.telemetry``, with
  the settings' bootstrap servers and TLS/SASL (``StreamsSettings.kafka_client_options``
  and the SSL context the app's broker credentials use), ``auto_offset_reset=earliest``,
  manual commits, the app's session/heartbeat timeouts;
- the app's producer (``app.maybe_start_producer()``) for FleetStates (``fleet.state``,
  keyed by fleet id) and DeadLetters (``deadletter``).

Delivery semantics, per batch (``getmany``, at most ``MAX_RECORDS``):

1. every record is folded into the windows and the site book, or becomes a dead letter
   (reason + original key and value bytes; never fatal);
2. the FleetStates of the windows the batch closed and its dead letters are produced and
   their acknowledgements awaited (``producer_acks=-1`` as the app);
3. only then are the batch's offsets (last offset + 1 per partition) committed.

So a FleetState or dead letter is never lost to a crash: a batch whose effects were not all
acknowledged is not committed and is read again after a restart (at-least-once; both
carry deterministic event ids, so a repeat is recognisable downstream). Open windows and
the site book are memory only, as they were with the Faust agent: records committed while
their window is still open are not replayed after a restart, so the windows open at that
moment (at most the longest window, 10 s) are lost or emitted from the records after the
restart only; the book is rebuilt from live telemetry within ``telemetry_max_age_s``.
Re-reading a batch is harmless for the book (newest event time wins) and for closed windows
(a record for a closed window is late and dropped). A failed commit (e.g. a rebalance in
between) is logged and the batch's records may be read again by this or another worker.
A producer error (or a bug in the step) crashes the service and, through Faust's service
tree, the app: the worker stops, as for a crashing agent.

Shutdown (``on_stop``, called by the app before its producer stops): no new batch is
taken, the batch in hand finishes (sent, acknowledged, committed), then the consumer leaves
its group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
    RebalanceInProgressError,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]
from mode import Service

from schemas.codec import encode
from streams.agents.aggregator import NAME, BatchOutcome, TelemetryAggregator
from streams.agents.base import wall_clock_micros
from streams.settings import StreamsSettings
from streams.topics import topic as topic_row

log = logging.getLogger(__name__)

MAX_RECORDS = 10_000  # per getmany: a backlog is read in batches of this size
POLL_MS = 200  # longest wait for records; also bounds how long a stop waits for the loop
FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
STOP_TIMEOUT_S = 30.0


def group_id(settings: StreamsSettings) -> str:
    """The telemetry consumer's group: ``<app_id>-telemetry``."""
    return f"{settings.app_id}-telemetry"


def consumer_options(settings: StreamsSettings) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword options for the telemetry consumer (holds the SASL
    password in clear when SASL is on: pass it on, never log it)."""
    from streams.app import ssl_context  # the app builds its broker credentials from it

    options = settings.kafka_client_options()
    if settings.security_protocol.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    options.update(
        group_id=group_id(settings),
        client_id=group_id(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,  # as the app (broker_session_timeout)
        heartbeat_interval_ms=3_000,  # as the app (broker_heartbeat_interval)
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )
    return options


class TelemetryService(Service):
    """Consumes ``site.telemetry`` in batches into ``aggregator`` (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        aggregator: TelemetryAggregator,
        *,
        clock: Callable[[], int] = wall_clock_micros,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.aggregator = aggregator
        self.clock = clock
        self.topic = settings.topic("site.telemetry")
        self.batches = 0  #: batches done (outputs acknowledged, commit attempted)
        self.records = 0  #: records in those batches
        self._consumer: Any = None
        self._producer: Any = None
        self._closing = False
        self._loop_task: asyncio.Task[None] | None = None
        self._state_topic = settings.topic("fleet.state")
        self._dlq_topic = settings.topic("deadletter")
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self._producer = await self.app.maybe_start_producer()
        consumer = AIOKafkaConsumer(**consumer_options(self.settings))
        await consumer.start()
        consumer.subscribe([self.topic])
        self._consumer = consumer
        self._loop_task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._closing = True
        task = self._loop_task
        if task is not None and not task.done():
            _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning("%s: the batch in hand did not finish in %g s", NAME, STOP_TIMEOUT_S)
                task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        consumer = self._consumer
        try:
            while not self._closing:
                batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                if batches:
                    await self.process(batches)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: telemetry consumer failed", NAME)
            await self.crash(exc)

    async def process(self, batches: Mapping[Any, Sequence[Any]]) -> BatchOutcome:
        """One ``getmany`` result: fold in (every partition's records in one step call, one
        partition after the other: the step's column-wise path pays off per call), send and
        await the outputs, commit."""
        now = self.clock()
        offsets: dict[Any, int] = {}
        records: list[Any] = []
        for tp, part in batches.items():
            if part:
                records += part
                offsets[tp] = part[-1].offset + 1
        outcome = self.aggregator.add_batch(records, now) if records else BatchOutcome()
        await self._send(outcome)
        await self._commit(offsets)
        self.batches += 1
        self.records += len(records)
        return outcome

    async def _send(self, outcome: BatchOutcome) -> None:
        producer = self._producer
        futures = []
        state_key = topic_row("fleet.state").key_of
        for state in outcome.states:
            record = state.to_record()
            value = encode("FleetState", record)
            futures.append(
                await producer.send(self._state_topic, state_key(record), value, None, None, None)
            )
        for letter in outcome.dead_letters:
            value = encode("DeadLetter", letter)
            futures.append(
                await producer.send(self._dlq_topic, letter["key"], value, None, None, None)
            )
            log.warning(
                "%s: %s[%d]@%d -> deadletter: %s: %s",
                NAME,
                letter["source_topic"],
                letter["partition"],
                letter["offset"],
                letter["error_type"],
                letter["reason"],
            )
        if futures:
            await asyncio.gather(*futures)

    async def _commit(self, offsets: Mapping[Any, int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(
                {TopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
            )
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.warning("%s: offsets not committed (read again later): %r", NAME, exc)
