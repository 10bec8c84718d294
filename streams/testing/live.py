"""Live telemetry for worker tests and benches: sites reporting at the wall clock.

``LiveTelemetry`` is a thread with its own event loop and producer that sends, every
``period_s``, one SiteTelemetry per site stamped with the current time (UTC microseconds),
the way bridges do; ``sent`` counts what Kafka acknowledged. Stop it (or leave the ``with``
block) before the test ends: the leak check wants its thread and sockets gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from contract.codec import encode
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from streams.testing.agents import telemetry_record

#: a site's telemetry fields at an instant (``telemetry_record`` keyword arguments)
Fields = Callable[[str, int], Mapping[str, Any]]


def _plain(site: str, t: int) -> Mapping[str, Any]:
    return {"battery_power_kw": 1.0, "baseline_kw": 0.5}


class LiveTelemetry:
    """Telemetry of ``sites`` to ``topic`` every ``period_s`` (see the module doc)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        sites: Sequence[str],
        *,
        period_s: float = 1.0,
        fields: Fields = _plain,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.sites = list(sites)
        self.period_s = period_s
        self.fields = fields
        self.sent = 0
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="live-telemetry", daemon=True)

    def start(self) -> LiveTelemetry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"live telemetry failed: {self.error!r}") from self.error

    def __enter__(self) -> LiveTelemetry:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _run(self) -> None:
        producer = clients.producer(self.kafka, linger_ms=5)
        async with clients.running(producer, self.kafka):
            next_at = time.monotonic()
            while not self._stop.is_set():
                now = time.time_ns() // 1000
                futures = [
                    await producer.send(
                        self.topic,
                        encode(
                            "SiteTelemetry", telemetry_record(site, now, **self.fields(site, now))
                        ),
                        key=site.encode(),
                    )
                    for site in self.sites
                ]
                await asyncio.gather(*futures)
                self.sent += len(futures)
                self.rounds += 1
                next_at += self.period_s
                # a threading.Event set from another thread: looked at every 0.1 s
                while not self._stop.is_set() and (left := next_at - time.monotonic()) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(min(left, 0.1))
