"""The broker a bench runs on: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a one-node local
KRaft broker (the project's own, from Kafka's jars) in ``data_dir``, stopped afterwards."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def bench_broker(data_dir: Path) -> Iterator[str]:
    """Bootstrap servers of the preset cluster or of a local broker living in ``data_dir``."""
    preset = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if preset:
        yield preset
        return
    from flowerhub.broker.launcher import local_cluster

    with local_cluster(nodes=1, data_dir=data_dir / "kafka") as state:
        yield state.bootstrap
