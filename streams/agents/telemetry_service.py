"""The worker's telemetry hot path: a batched aiokafka consumer of ``site.telemetry``.

Why not a Faust agent: Faust 0.15.3 delivers every message through its consumer, conductor
and stream (two tasks, an ``asyncio.wait`` and about a dozen coroutine steps per event): an
agent doing nothing took 5-11k events/s on the 2-core bench machine, the telemetry agent
2.5-3.4k/s, against 245-310k/s for a raw aiokafka consumer of the same topic. Telemetry is
the one high-rate input (1 Hz per site, and a backlog after an outage), so it is read here
in ``getmany`` batches and handed to the pure step
(:meth:`streams.agents.aggregator.TelemetryAggregator.add_batch`); site setpoints are read
the same way (``setpoint_filter``), every other input stays a Faust agent. Each
``getmany`` (every partition's records, one partition after the other) is one
``add_batch`` call: the step decodes and aggregates it column-wise in numpy
(``streams.agents.aggregator``), about 1 us per event for batches of 10,000 against 12-17
us per event record by record. Measured (bench_streams ``telemetry_worker``, the real
worker in a child process): 0.62x the raw consumer of the same topic (286k against 465k
events/s, load average 1.0 on 2 cores); record by record it was 0.13-0.21x.

:class:`TelemetryService` is a :class:`~streams.agents.batch_consumer.BatchConsumer` (a
``mode.Service`` registered with the Faust app: it starts with the app once table recovery
is over, and stops with it; its consumer, commits and shutdown are that module's). It owns:

- an ``AIOKafkaConsumer`` in its own consumer group, :func:`group_id` (``<app_id>-telemetry``;
  the Faust app's group stays ``<app_id>``), subscribed to ``<prefix>site.telemetry``, with
  the settings' bootstrap servers and TLS/SASL (``contract.kafka.clients.consumer_options``
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
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from contract.codec import encode
from contract.kafka.delivery import AckedSender, Outgoing
from contract.topics import topic as topic_row
from streams.agents.aggregator import NAME, BatchOutcome, TelemetryAggregator
from streams.agents.base import started_kafka_producer, wall_clock_micros
from streams.agents.batch_consumer import BatchConsumer, Batches, batch_consumer_options
from streams.settings import StreamsSettings

log = logging.getLogger(__name__)

CONSUMER = "telemetry"  # the batch consumer's name: group ``<app_id>-telemetry``
MAX_RECORDS = 10_000  # per getmany: a backlog is read in batches of this size


def group_id(settings: StreamsSettings) -> str:
    """The telemetry consumer's group: ``<app_id>-telemetry``."""
    return f"{settings.app_id}-{CONSUMER}"


def consumer_options(settings: StreamsSettings) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword options for the telemetry consumer (holds the SASL
    password in clear when SASL is on: pass it on, never log it)."""
    return batch_consumer_options(settings, CONSUMER)


class TelemetryService(BatchConsumer):
    """Consumes ``site.telemetry`` in batches into ``aggregator`` (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        aggregator: TelemetryAggregator,
        *,
        clock: Callable[[], int] = wall_clock_micros,
        sender: Callable[[], Awaitable[AckedSender]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.aggregator = aggregator
        self.clock = clock
        self._producer: Any = None
        self._sender_of = sender
        self._state_topic = settings.topic("fleet.state")
        self._dlq_topic = settings.topic("deadletter")
        self.last_outcome = BatchOutcome()  #: the last batch's outcome
        #: dead letters sent, by (consumer, error type) (``streams.metrics`` exposes them)
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        super().__init__(
            app,
            settings,
            name=CONSUMER,
            topic=settings.topic("site.telemetry"),
            handler=self.fold,
            max_records=MAX_RECORDS,
            **kwargs,
        )

    async def on_start(self) -> None:
        self._producer = await self.app.maybe_start_producer()
        await super().on_start()

    async def fold(self, batches: Batches) -> BatchOutcome:
        """One ``getmany`` result: fold in (every partition's records in one step call, one
        partition after the other: the step's column-wise path pays off per call), then send
        the outputs and await their acknowledgements (the commit follows in ``process``)."""
        records = [record for part in batches.values() for record in part]
        now = self.clock()
        outcome = self.aggregator.add_batch(records, now) if records else BatchOutcome()
        await self._send(outcome)
        self.last_outcome = outcome
        return outcome

    async def _send(self, outcome: BatchOutcome) -> None:
        """Fleet states and dead letters through the per-record acknowledged sender over the
        app's producer (``contract.kafka.delivery``; Faust's producer without one, e.g. in
        Faust's test context); returns once every record was acknowledged."""
        state_key = topic_row("fleet.state").key_of
        out: list[Outgoing] = []
        for state in outcome.states:
            record = state.to_record()
            value = encode("FleetState", record)
            out.append(Outgoing(self._state_topic, value, state_key(record)))
        for letter in outcome.dead_letters:
            value = encode("DeadLetter", letter)
            out.append(Outgoing(self._dlq_topic, value, letter["key"]))
            log.warning(
                "%s: %s[%d]@%d -> deadletter: %s: %s",
                NAME,
                letter["source_topic"],
                letter["partition"],
                letter["offset"],
                letter["error_type"],
                letter["reason"],
            )
        if not out:
            return
        if self._sender_of is not None and started_kafka_producer(self.app) is not None:
            await (await self._sender_of()).deliver(out)
        else:
            producer = self._producer
            futures = [await producer.send(r.topic, r.key, r.value, None, None, None) for r in out]
            await asyncio.gather(*futures)
        for letter in outcome.dead_letters:  # counted once acknowledged
            self.dead_letters[(str(letter["consumer"]), str(letter["error_type"]))] += 1
