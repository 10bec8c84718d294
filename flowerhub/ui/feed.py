"""The UI's Kafka reader: the topic table's UI topics, live, into the view model.

Read-only and groupless: one consumer without a consumer group (nothing is committed, no
other reader is disturbed, any number of UIs can run), every partition assigned by hand.
Where each topic starts, so the page opens on the last ``window_s`` (15 minutes) and not on
an empty chart:

- ``site.telemetry``, ``fleet.state``: the first offset at or after now - ``window_s``
  (Kafka's ``offsets_for_times``);
- ``site.faults``, ``site.device-status`` (compacted: the latest state per site): the
  beginning;
- ``site.command-results``, ``market.activations``, ``reserve.assignments``,
  ``compliance.verdicts``: now - ``lookback_s`` (default 24 h: today's activations and
  each site's last command result).

Until the end offsets seen at assignment are reached, the feed reports ``loading`` with its
progress. A topic that does not exist yet (the worker creates the table) is waited for
and picked up within ``RECHECK_S``. A lost broker is retried with backoff (the page shows
the error); the positions reached are kept, so nothing is folded twice after a reconnect.

Every Kafka consumer of the UI is built by :func:`kafka_consumer` (one place to add the
connection settings: TLS/SASL, from ``contract.kafka``); the topics' partition counts come
from one metadata request (``contract.kafka.admin.topic_partitions``, as the archiver's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from contract.kafka import clients
from contract.kafka.admin import topic_partitions
from contract.kafka.delivery import stop_within
from contract.kafka.settings import KafkaSettings
from flowerhub.ui.fold import TOPIC_ORDER, Folder, unprefixed
from flowerhub.ui.views import FeedState

log = logging.getLogger(__name__)

POLL_MS = 200
MAX_RECORDS = 20_000
RECHECK_S = 5.0  # how often missing topics are looked for
BACKOFF_S = (1.0, 30.0)  # first and longest wait before reconnecting
CONSUMER_STOP_S = 2.0  # the consumer's stop, bounded (contract.kafka.delivery.stop_within)
#: where each topic starts: "window" (now - window_s), "lookback" (now - lookback_s), "beginning"
START_POLICY: dict[str, str] = {
    "fleet.state": "window",
    "site.telemetry": "window",
    "site.faults": "beginning",
    "site.device-status": "beginning",
    "site.command-results": "lookback",
    "market.activations": "lookback",
    "reserve.assignments": "lookback",
    "compliance.verdicts": "lookback",
}


def kafka_consumer(kafka: KafkaSettings) -> Any:
    """The UI's Kafka consumer (the project's factory: TLS/SASL from the settings): no group,
    nothing committed, manual assignment."""
    return clients.consumer(
        kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        request_timeout_ms=30_000,
    )


@dataclass(frozen=True)
class FeedConfig:
    kafka: KafkaSettings
    prefix: str = ""
    window_s: float = 900.0
    lookback_s: float = 86_400.0


class KafkaFeed:
    """Reads the UI topics into ``folder`` and calls ``notify`` after each batch."""

    def __init__(
        self,
        config: FeedConfig,
        folder: Folder,
        state: FeedState,
        notify: Callable[[], None],
        *,
        clock_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.config = config
        self.folder = folder
        self.state = state
        self.notify = notify
        self.clock_ms = clock_ms
        self._next: dict[tuple[str, int], int] = {}  # next offset to fold, kept across reconnects
        self._starts: dict[tuple[str, int], int] = {}
        self._ends: dict[tuple[str, int], int] = {}  # the end offsets of the first read
        self._assigned: list[Any] = []
        self._checked = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; never raises for a broker problem or a bad batch (both
        reported on the page and in the log; the feed reconnects after a backoff, past the
        batch that failed)."""
        backoff = BACKOFF_S[0]
        while not stop.is_set():
            consumer = kafka_consumer(self.config.kafka)
            try:
                await consumer.start()
                self._assigned, self._checked = [], 0.0
                self.state.error = None
                backoff = BACKOFF_S[0]
                await self._consume(consumer, stop)
                continue
            except (KafkaError, OSError) as exc:
                text = str(exc) or type(exc).__name__
                if not text.startswith(type(exc).__name__):
                    text = f"{type(exc).__name__}: {text}"
                self.state.error = f"Kafka {self.config.kafka.describe()}: {text}"
                log.warning("%s; retrying in %.0f s", self.state.error, backoff)
            except Exception as exc:  # a bug: shown, logged with its traceback, retried
                self.state.error = f"UI feed failed: {type(exc).__name__}: {exc}"
                log.exception("UI feed failed; restarting it in %.0f s", backoff)
            finally:  # bounded: with the brokers frozen a consumer's stop has no end
                await stop_within(consumer, CONSUMER_STOP_S)
            self.notify()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_S[1])

    async def _consume(self, consumer: Any, stop: asyncio.Event) -> None:
        prefix = self.config.prefix
        while not stop.is_set():
            if time.monotonic() - self._checked >= RECHECK_S and (
                not self._assigned or self.state.waiting_for
            ):
                await self._assign(consumer)
            if not self._assigned:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_MS / 1000)
                continue
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            by_topic: dict[str, list[bytes | None]] = {}
            for tp, messages in batches.items():
                if not messages:
                    continue
                name = unprefixed(tp.topic, prefix)
                if name is not None:
                    by_topic.setdefault(name, []).extend(m.value for m in messages)
                self._next[(tp.topic, tp.partition)] = messages[-1].offset + 1
            if by_topic:
                self.folder.fold_batches(by_topic)
            if self.state.loading:
                self._progress()
            if by_topic:
                self.notify()

    def _progress(self) -> None:
        total = done = 0
        for key, end in self._ends.items():
            start = self._starts.get(key, end)
            total += end - start
            done += min(end, self._next.get(key, start)) - start
        self.state.progress = 1.0 if total <= 0 else done / total
        if done >= total:
            self.state.loading = False
            self.state.progress = 1.0
            self.notify()

    async def _assign(self, consumer: Any) -> None:
        """Assign the partitions of the UI topics that exist; seek new ones to their start."""
        self._checked = time.monotonic()
        prefix = self.config.prefix
        wanted = [prefix + name for name in TOPIC_ORDER]
        existing = await topic_partitions(self.config.kafka, wanted)
        self.state.waiting_for = tuple(t for t in wanted if t not in existing)
        have = {tp.topic for tp in self._assigned}
        new = [
            TopicPartition(topic, p)
            for topic in wanted
            if topic in existing and topic not in have
            for p in range(existing[topic])
        ]
        if not new:
            if not self._assigned:
                self._progress()
            return
        old = list(self._assigned)
        self._assigned = old + new
        consumer.assign(self._assigned)
        for tp in old:
            consumer.seek(tp, self._next[(tp.topic, tp.partition)])
        fresh = [tp for tp in new if (tp.topic, tp.partition) not in self._next]
        starts = await self._start_offsets(consumer, fresh)
        ends = await consumer.end_offsets(fresh) if fresh else {}
        for tp in new:
            key = (tp.topic, tp.partition)
            if key not in self._next:
                self._next[key] = self._starts[key] = starts[tp]
                self._ends[key] = ends[tp]
            consumer.seek(tp, self._next[key])
        if self.state.waiting_for:
            log.info("waiting for topics %s", ", ".join(self.state.waiting_for))
        self._progress()

    async def _start_offsets(self, consumer: Any, tps: Sequence[Any]) -> dict[Any, int]:
        if not tps:
            return {}
        prefix, now_ms = self.config.prefix, self.clock_ms()
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        since: dict[Any, int] = {}
        for tp in tps:
            policy = START_POLICY[tp.topic[len(prefix) :]]
            if policy != "beginning":
                back_s = self.config.window_s if policy == "window" else self.config.lookback_s
                since[tp] = max(0, int(now_ms - back_s * 1000))
        found = await consumer.offsets_for_times(since) if since else {}
        out: dict[Any, int] = {}
        for tp in tps:
            if tp not in since:
                out[tp] = beginnings[tp]
            else:
                hit = found.get(tp)
                out[tp] = ends[tp] if hit is None else max(hit.offset, beginnings[tp])
        return out
