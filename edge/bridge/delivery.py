"""Deliver the outbox over MQTT: each record sent, each marked delivered when its own PUBACK
arrives. (The Kafka uplink uses ``contract.kafka.delivery.AckedSender``: one lane per
partition, so a partition without a leader holds back only its own records.)

The shape: a
:class:`RecordSender` takes a record and returns an awaitable that resolves when the far
side acknowledged that record (or fails). :func:`deliver_outbox` sends the oldest pending
records in order, acknowledges each one in the outbox the moment its own ack arrives (so a
slow or failing record never holds back the marking of others), and raises the first
failure once the batch has settled, for the transport to reconnect and try again. Records
not acknowledged stay in the outbox and are sent again, with their original event ids.
No Kafka and no MQTT here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

from edge.bridge.outbox import Outbox, OutboxRecord

IDLE_S = 0.01


class RecordSender(Protocol):
    async def send(self, record: OutboxRecord) -> Awaitable[Any]:
        """Hand ``record`` to the transport; the awaitable resolves at its ack."""
        ...


async def deliver_outbox(
    outbox: Outbox, sender: RecordSender, stats: Any, *, batch: int = 500
) -> None:
    """Forever: send pending records, mark each when acknowledged; raise the first failure
    (``stats`` needs ``sent`` and ``send_failures`` counters)."""
    while True:
        records = outbox.pending(batch)
        if not records:
            await asyncio.sleep(IDLE_S)
            continue
        waits: list[asyncio.Future[Any]] = []
        for record in records:
            fut = asyncio.ensure_future(await sender.send(record))
            fut.add_done_callback(_marker(outbox, record, stats))
            waits.append(fut)
        results = await asyncio.gather(*waits, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]


def _marker(outbox: Outbox, record: OutboxRecord, stats: Any) -> Any:
    def mark(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            stats.send_failures += 1
            return
        outbox.ack([record])
        stats.sent += 1

    return mark
