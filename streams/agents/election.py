"""The election group's assignor: the worker that leads keeps the lead.

Kafka's own assignors give partition 0 of the election topic to the member whose id sorts
first, so a worker rejoining the group (a restart, or one resumed after a freeze) could
take the lead from the worker that holds it, and the fleet would pay a takeover for
nothing. :func:`sticky_election` makes an assignor that asks each member, in its join
metadata, since when it leads (wall clock, None: it does not) and gives partition 0 to the
member that began leading last: the one whose producer fenced every earlier one. When
nobody leads, the member id that sorts first gets it (as Kafka's range assignor would).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# aiokafka ships no type information
from aiokafka.coordinator.assignors.abstract import (  # type: ignore[import-untyped, unused-ignore]
    AbstractPartitionAssignor,
)
from aiokafka.coordinator.protocol import (  # type: ignore[import-untyped, unused-ignore]
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

NAME = "flowerhub-sticky-leader"


def leading_since(metadata: Any) -> float | None:
    """The lead start a member's join metadata names (None: not leading, or unreadable)."""
    try:
        data = json.loads(metadata.user_data or b"{}")
    except (ValueError, TypeError):
        return None
    since = data.get("since") if isinstance(data, dict) else None
    return float(since) if isinstance(since, int | float) else None


def pick_leader(members: Mapping[str, Any]) -> str | None:
    """The member id to hold partition 0 (see the module doc)."""
    if not members:
        return None
    leading = [(since, member) for member, m in members.items() if (since := leading_since(m))]
    if leading:
        return max(leading)[1]
    return min(members)


def sticky_election(since: Callable[[], float | None]) -> type:
    """An assignor class for one worker's election consumer; ``since()`` says since when
    this worker leads (None: it does not)."""

    class StickyElection(AbstractPartitionAssignor):  # type: ignore[misc]  # untyped base
        name = NAME
        version = 0

        @classmethod
        def assign(cls, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
            topics = sorted({t for m in members.values() for t in m.subscription})
            chosen = pick_leader(members)
            out = {}
            for member in members:
                held = [
                    (topic, sorted(cluster.partitions_for_topic(topic) or ()))
                    for topic in topics
                    if member == chosen
                ]
                out[member] = ConsumerProtocolMemberAssignment(cls.version, held, b"")
            return out

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> Any:
            data = json.dumps({"since": since()}).encode()
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), data)

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            return None

    return StickyElection
