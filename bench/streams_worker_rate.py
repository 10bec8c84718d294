"""The real streams worker's telemetry rate, measured in a child process for bench_streams.

    python -m bench.streams_worker_rate BOOTSTRAP PREFIX APP_ID EVENTS OUT_JSON

Builds the app exactly as ``flowerhub streams worker`` does (``streams.app.build`` with the
settings for BOOTSTRAP, PREFIX, APP_ID), runs it with ``faust.Worker`` in this process (its
own consumer group, so ``site.telemetry`` is read from the start), and times the telemetry
agent through Faust's consumer, conductor and stream: from the first event the site book
took to the EVENTS-th (every bench event is its site's newest, so the book's version counts
events). Writes ``{"rate": events/s, "events": n, "seconds": s, "startup_s": s}`` to
OUT_JSON. A child process because a Faust worker takes over logging, signals and the loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faust

from streams.app import build, settings_with

POLL_S = 0.005
TIMEOUT_S = 300.0


async def measure(bootstrap: str, prefix: str, app_id: str, events: int) -> dict[str, Any]:
    built = build(settings_with(bootstrap=bootstrap, app_id=app_id, prefix=prefix))
    book = built.book
    with tempfile.TemporaryDirectory() as workdir:
        worker = faust.Worker(
            built.app,
            loop=asyncio.get_running_loop(),
            loglevel="error",
            quiet=True,
            workdir=workdir,
        )
        launched = time.perf_counter()
        starting = asyncio.ensure_future(worker.start())
        try:
            deadline = launched + TIMEOUT_S
            while book.version == 0:
                if starting.done() and starting.exception() is not None:
                    raise RuntimeError("worker failed to start") from starting.exception()
                if time.perf_counter() > deadline:
                    raise TimeoutError("the worker consumed no telemetry")
                await asyncio.sleep(POLL_S)
            first, first_version = time.perf_counter(), book.version
            while book.version < events:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"the worker consumed {book.version}/{events} events")
                await asyncio.sleep(POLL_S)
            last, last_version = time.perf_counter(), book.version
        finally:
            await worker.stop()
            if not starting.done():
                starting.cancel()
    counted = last_version - first_version
    return {
        "rate": counted / (last - first),
        "events": counted,
        "seconds": last - first,
        "startup_s": first - launched,
    }


def main(argv: list[str]) -> int:
    bootstrap, prefix, app_id, events, out = argv
    result = asyncio.run(measure(bootstrap, prefix, app_id, int(events)))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
