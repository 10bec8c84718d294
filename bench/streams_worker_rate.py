"""The real streams worker's telemetry figure, measured in a child process for bench_streams.

    python -m bench.streams_worker_rate telemetry BOOTSTRAP PREFIX APP_ID EVENTS OUT_JSON

Builds the app exactly as ``flowerhub streams worker`` does (``streams.app.build`` with the
settings for BOOTSTRAP, PREFIX, APP_ID) and runs it with ``faust.Worker`` in this process
(its own consumer group: topics are read from the start). A child process because a Faust
worker takes over logging, signals and the event loop. The worker's site tasks
(``streams.agents.site_tasks``: batched consumer -> per partition decode, windows -> slices
for the leader acknowledged -> commit) are timed from the end of its first batch to the
batch that completes EVENTS records (the records of the first batch are not counted).
Writes ``{"rate", "events", "seconds", "startup_s", "batches", "late"}``.

The fan-outs through the worker (one product, three products) are ``bench_fleet_split``'s:
the real ``flowerhub streams worker`` process with the sites reporting live.
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

from contract.kafka.settings import KafkaSettings, settings_for
from streams.app import StreamsApp, build, settings_with

POLL_S = 0.005
TIMEOUT_S = 300.0


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


def main(argv: list[str]) -> int:
    mode, bootstrap, prefix, app_id, count, out = argv
    kafka = settings_for(bootstrap)
    if mode == "telemetry":
        result = asyncio.run(measure_telemetry(kafka, prefix, app_id, int(count)))
    else:
        raise SystemExit(f"unknown mode {mode!r} (telemetry)")
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
