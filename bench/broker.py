"""The broker a bench runs on: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a one-node local
KRaft broker (the project's own, from Kafka's jars) in ``data_dir``, stopped afterwards."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from contract.kafka.settings import KafkaSettings, settings_for


@contextlib.contextmanager
def bench_broker(data_dir: Path) -> Iterator[KafkaSettings]:
    """The preset cluster or a local broker living in ``data_dir``, as connection settings."""
    preset = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if preset:
        yield settings_for(preset)
        return
    from flowerhub.broker.launcher import local_cluster

    with local_cluster(nodes=1, data_dir=data_dir / "kafka") as state:
        yield settings_for(state.bootstrap)
