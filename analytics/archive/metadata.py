"""Which topics exist on a broker and how many partitions each has (one metadata request)."""

from __future__ import annotations

from collections.abc import Iterable

import aiokafka  # type: ignore[import-untyped, unused-ignore]  # ships no py.typed


async def topic_partitions(bootstrap: str, topics: Iterable[str] | None = None) -> dict[str, int]:
    """Topic -> partition count for ``topics`` that exist (all topics when None)."""
    client = aiokafka.AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    wanted = set(cluster.topics()) if topics is None else set(topics)
    found: dict[str, int] = {}
    for topic in sorted(wanted):
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            found[topic] = len(partitions)
    return found
