"""A tiny Faust app for tests/integration/test_faust_smoke.py, run as a worker subprocess.

    python tests/integration/faust_smoke_app.py BOOTSTRAP APP_ID DATADIR

Agent: sums amounts per key from ``<app_id>-events`` (values ``b"<seq>:<amount>"``, ``seq``
counting up per key) into the table ``totals`` (changelog ``<app_id>-totals-changelog``) and
sends each new total to ``<app_id>-totals``. The table keeps ``[last_seq, total]`` and skips
an event whose seq it has already applied: Faust delivers at least once, and a worker restart
can hand the agent an event twice (seen on Kafka 3.9 and 4.x alike), so the agent is
idempotent, as every agent of the project must be. The worker touches ``DATADIR/ready-<pid>``
once recovery is over: events sent while Faust 0.15.3 is still recovering can be lost or
doubled (resume_partitions runs before the seek to committed offsets in
faust/tables/recovery.py), which the test avoids by waiting for that file.
Every topic is pre-created by the test (the broker has auto creation off), so the app sets
``topic_allow_declare=False`` and Faust never sends CreateTopics itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import faust

PARTITIONS = 2


def topic_names(app_id: str) -> dict[str, str]:
    """The topics this app uses, all of which the test creates beforehand."""
    return {
        "events": f"{app_id}-events",
        "totals": f"{app_id}-totals",
        "changelog": f"{app_id}-totals-changelog",
        "leader": f"{app_id}-__assignor-__leader",
    }


def create_app(bootstrap: str, app_id: str, datadir: str) -> Any:
    names = topic_names(app_id)
    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        store="memory://",
        datadir=datadir,
        topic_partitions=PARTITIONS,
        topic_allow_declare=False,
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=10,
        table_standby_replicas=0,
    )
    events = app.topic(
        names["events"], key_type=str, value_type=bytes, value_serializer="raw", partitions=2
    )
    totals_topic = app.topic(
        names["totals"], key_type=str, value_type=bytes, value_serializer="raw", partitions=2
    )
    totals = app.Table("totals", default=lambda: [0, 0], key_type=str, partitions=2)

    async def sum_amounts(stream: Any) -> None:
        async for key, value in stream.items():
            last_seq, total = totals[key]
            seq, amount = (int(part) for part in value.split(b":"))
            if seq <= last_seq:
                continue  # a redelivered event: already in the total
            totals[key] = [seq, total + amount]
            await totals_topic.send(key=key, value=str(total + amount).encode())

    async def mark_ready() -> None:
        # App tasks start only after table recovery completed and stream partitions were
        # sought to their committed offsets: from here on, new events are safe to send.
        (Path(datadir) / f"ready-{os.getpid()}").touch()

    app.agent(events, name="sum-amounts")(sum_amounts)
    app.task(mark_ready)
    return app


def main(argv: list[str]) -> None:
    bootstrap, app_id, datadir = argv
    app = create_app(bootstrap, app_id, datadir)
    loglevel = os.environ.get("SMOKE_LOGLEVEL", "warn")
    sys.argv = [sys.argv[0], "worker", f"--loglevel={loglevel}", "--without-web"]
    app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
