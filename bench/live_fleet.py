"""A live fleet's telemetry for the worker benches: every site once a second, spread evenly.

:class:`FleetTelemetry` is a thread with its own event loop and producer that sends one
SiteTelemetry per site every ``period_s``, the sites spread over ``slots`` equal steps of the
period (site ``i`` in slot ``i % slots``), each record stamped with the wall time it is sent
(UTC microseconds), as bridges reporting at 1 Hz with their own phases do: every partition's
stream time then follows the wall clock within a slot, which is what the leader's event-time
merge waits for before it takes a fleet request (``streams.steps.event_time``). Records are
encoded with the raw codec and produced in per-partition batches
(``streams.agents.batching.KeyedBatchSender``) so that 10,000 sites cost the bench process a
fraction of a core; ``sent`` counts the records queued. Leave the ``with`` block to stop
it; a failure of the thread is raised there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from contract.codec import raw_codec
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from streams.agents.batching import KeyedBatchSender
from streams.testing.agents import telemetry_record

#: a site's fixed telemetry fields (``telemetry_record`` keyword arguments)
Fields = Callable[[int, str], Mapping[str, Any]]


def _plain(i: int, site: str) -> Mapping[str, Any]:
    return {}


class FleetTelemetry:
    """Telemetry of ``sites`` to ``topic`` (``partitions`` of it), see the module doc."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partitions: int,
        sites: Sequence[str],
        *,
        period_s: float = 1.0,
        slots: int = 20,
        fields: Fields = _plain,
    ) -> None:
        if slots <= 0 or period_s <= 0:
            raise ValueError(f"slots and period_s must be > 0, got {slots}, {period_s}")
        self.kafka = kafka
        self.topic = topic
        self.partitions = partitions
        self.period_s = period_s
        self.slots = [
            [(site.encode(), site, dict(fields(i, site))) for i, site in enumerate(sites)][s::slots]
            for s in range(slots)
        ]
        self.sent = 0
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fleet-telemetry", daemon=True)

    def __enter__(self) -> FleetTelemetry:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None and error is None:
            raise RuntimeError(f"fleet telemetry failed: {self.error!r}") from self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # raised by __exit__
            self.error = exc

    async def _run(self) -> None:
        encode = raw_codec().encode
        producer = clients.producer(self.kafka, linger_ms=5, max_batch_size=512 * 1024)
        async with clients.running(producer, self.kafka):
            sender = KeyedBatchSender(producer, self.topic, self.partitions)
            step = self.period_s / len(self.slots)
            next_at = time.monotonic()
            pending: list[asyncio.Future[list[Any]]] = []
            try:
                while not self._stop.is_set():
                    for slot in self.slots:
                        now = time.time_ns() // 1000
                        pending.append(
                            await sender.send_all(
                                (key, encode("SiteTelemetry", telemetry_record(site, now, **kw)))
                                for key, site, kw in slot
                            )
                        )
                        self.sent += len(slot)
                        next_at += step
                        left = next_at - time.monotonic()
                        if left > 0:
                            await asyncio.sleep(left)
                        if self._stop.is_set():
                            break
                    self.rounds += 1
                    done = [f for f in pending if f.done()]
                    for f in done:
                        f.result()  # a failed delivery ends the thread (raised on exit)
                    pending = [f for f in pending if not f.done()]
                await asyncio.gather(*pending)
            finally:
                await sender.close(2.0)
