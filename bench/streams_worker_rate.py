"""The real streams worker's figures, measured in a child process for bench_streams.

    python -m bench.streams_worker_rate telemetry BOOTSTRAP PREFIX APP_ID EVENTS OUT_JSON
    python -m bench.streams_worker_rate commands BOOTSTRAP PREFIX APP_ID SITES OUT_JSON
    python -m bench.streams_worker_rate reserves BOOTSTRAP PREFIX APP_ID SITES OUT_JSON

Both build the app exactly as ``flowerhub streams worker`` does (``streams.app.build`` with
the settings for BOOTSTRAP, PREFIX, APP_ID) and run it with ``faust.Worker`` in this process
(its own consumer group: topics are read from the start). A child process because a Faust
worker takes over logging, signals and the event loop.

- ``telemetry``: the worker's site tasks (``streams.agents.site_tasks``: batched consumer ->
  per partition decode, windows -> slices for the leader acknowledged -> commit), timed
  from the end of its first batch to the batch that completes EVENTS records (the records
  of the first batch are not counted). Writes ``{"rate", "events", "seconds", "startup_s",
  "batches", "late"}``.
- ``commands``: once the leader's book holds SITES sites (telemetry the parent produced),
  one FleetSetpoint is produced and the clock runs until SITES SiteCommands were read back
  from ``site.commands`` (the leader -> ``site.setpoints`` -> the site tasks' filter ->
  ``site.commands``, all in the worker). Writes ``{"seconds", "commands", "startup_s",
  "cpu_s"}`` (``cpu_s``: this process's CPU time over the same span: worker, this reader
  and the producer of the order; the broker runs apart).
- ``reserves``: the same, with three ReserveAssignments produced at once (FCR-N, FCR-D up,
  FCR-D down on the same homes: ``RESERVE_KW_PER_SITE``) instead of the FleetSetpoint; the
  clock runs until 3 x SITES SiteCommands were read back. Both also write ``split_s``: when
  the leader's site setpoints were all committed (its ``setpoints_sent``, looked at every
  ``POLL_S``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from contract.codec import encode
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings, settings_for
from contract.topics import topic
from streams.app import StreamsApp, build, settings_with
from streams.steps.ids import derived_id
from streams.testing.agents import fleet_setpoint_record

S = 1_000_000
POLL_S = 0.005
TIMEOUT_S = 300.0
TARGET_MW_PER_SITE = 0.0035  # below every bench site's headroom: every site gets a share
#: per site, kW: all three fit every bench site's room (3-7 kW up, 8 kW down), so every
#: site gets a share of each
RESERVE_KW_PER_SITE: tuple[tuple[str, float, float, float], ...] = (
    ("FCR_N", 1.0, 50.0, 49.9),
    ("FCR_D_UP", 1.5, 49.9, 49.5),
    ("FCR_D_DOWN", 2.0, 50.1, 50.5),
)


@asynccontextmanager
async def running(built: StreamsApp) -> AsyncIterator[float]:
    """Run the app's worker in this loop; yields the perf_counter time it was launched."""
    with tempfile.TemporaryDirectory() as workdir:
        worker = faust.Worker(
            built.app,
            loop=asyncio.get_running_loop(),
            loglevel="info",  # the CLI default; warn and above turn on Faust's spinner, which
            # sets the root logger to DEBUG (every debug call then builds a record)
            quiet=True,
            workdir=workdir,
        )
        launched = time.perf_counter()
        starting = asyncio.ensure_future(worker.start())
        try:
            yield launched
        finally:
            await worker.stop()
            if not starting.done():
                starting.cancel()


async def until(what: str, done: Callable[[], bool | Awaitable[bool]], deadline: float) -> None:
    while True:
        ok = done()
        if not isinstance(ok, bool):
            ok = await ok
        if ok:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not reached in {TIMEOUT_S:g} s")
        await asyncio.sleep(POLL_S)


async def measure_telemetry(kafka: KafkaSettings, prefix: str, app_id: str, events: int) -> Any:
    built = build(settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=prefix))
    service = built.site_tasks
    async with running(built) as launched:
        deadline = launched + TIMEOUT_S
        await until("first telemetry batch", lambda: service.records > 0, deadline)
        first, first_count, first_batches = time.perf_counter(), service.records, service.cycles
        await until(f"{events} telemetry events", lambda: service.records >= events, deadline)
        last, last_count = time.perf_counter(), service.records
        batches = service.cycles - first_batches
        late = service.late
    counted = last_count - first_count
    return {
        "rate": counted / (last - first),
        "events": counted,
        "seconds": last - first,
        "startup_s": first - launched,
        "batches": batches,
        "late": late,
    }


def leader_book_size(built: StreamsApp) -> int:
    leading = built.leader.leading
    return 0 if leading is None else len(leading.core.book)


def leader_setpoints(built: StreamsApp) -> int:
    leading = built.leader.leading
    return 0 if leading is None else leading.setpoints_sent


def _orders(
    settings: Any, mode: str, sites: int, now: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, event, record) of what starts the fan-out: one FleetSetpoint, or three
    ReserveAssignments."""
    if mode == "commands":
        order = fleet_setpoint_record(
            settings.fleet_id, "bench-worker", now, sites * TARGET_MW_PER_SITE, now + 60 * S
        )
        return [(settings.topic("market.fleet-setpoints"), "FleetSetpoint", order)]
    return [
        (
            settings.topic("reserve.assignments"),
            "ReserveAssignment",
            {
                "event_id": derived_id("bench-assignment", product, now),
                "event_time": now,
                "fleet_id": settings.fleet_id,
                "assignment_id": f"bench-{product}",
                "product": product,
                "capacity_mw": sites * kw / 1000.0,
                "valid_from": now,
                "valid_until": now + 3600 * S,
                "f_start_hz": f_start,
                "f_full_hz": f_full,
                "deadband_hz": 0.0,
            },
        )
        for product, kw, f_start, f_full in RESERVE_KW_PER_SITE
    ]


async def measure_commands(
    kafka: KafkaSettings, prefix: str, app_id: str, sites: int, mode: str = "commands"
) -> Any:
    settings = settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=prefix)
    expected = sites * (1 if mode == "commands" else len(RESERVE_KW_PER_SITE))
    built = build(settings)
    commands = settings.topic("site.commands")
    consumer = clients.consumer(kafka, enable_auto_commit=False, auto_offset_reset="latest")
    producer = clients.producer(kafka, enable_idempotence=False)
    await clients.start(consumer, kafka)
    await clients.start(producer, kafka)
    try:
        parts = [TopicPartition(commands, p) for p in range(topic("site.commands").partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end()
        for tp in parts:
            await consumer.position(tp)
        async with running(built) as launched:
            deadline = launched + TIMEOUT_S
            await until(
                f"{sites} sites in the leader's book",
                lambda: leader_book_size(built) >= sites,
                deadline,
            )
            ready = time.perf_counter()
            now = time.time_ns() // 1000
            orders = _orders(settings, mode, sites, now)
            started, cpu = time.perf_counter(), time.process_time()
            sends = [
                await producer.send(topic, encode(event, record), key=settings.fleet_id.encode())
                for topic, event, record in orders
            ]
            await asyncio.gather(*sends)
            split: list[float] = []

            async def split_done() -> None:
                await until("setpoints", lambda: leader_setpoints(built) >= expected, deadline)
                split.append(time.perf_counter() - started)

            watching = asyncio.ensure_future(split_done())
            seen = 0
            while seen < expected:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{seen}/{expected} commands")
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                seen += sum(len(records) for records in batches.values())
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            await watching
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "seconds": seconds,
        "commands": seen,
        "startup_s": ready - launched,
        "cpu_s": cpu,
        "split_s": split[0],  # every site setpoint acknowledged by Kafka
    }


def main(argv: list[str]) -> int:
    mode, bootstrap, prefix, app_id, count, out = argv
    kafka = settings_for(bootstrap)
    if mode == "telemetry":
        result = asyncio.run(measure_telemetry(kafka, prefix, app_id, int(count)))
    elif mode in ("commands", "reserves"):
        result = asyncio.run(measure_commands(kafka, prefix, app_id, int(count), mode))
    else:
        raise SystemExit(f"unknown mode {mode!r} (telemetry, commands, reserves)")
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
