"""Ordered stop of a bridge's tasks that cannot hang on one task swallowing its cancellation.

``asyncio.gather`` after ``cancel()`` waits forever for a task that catches the
``CancelledError`` and goes on (a library converting a cancelled request into an I/O error that
a retry loop then retries is enough). A bridge that ignores SIGTERM is worse than one that stops
a little abruptly: the service manager escalates to SIGKILL and the sqlite/outbox files are
closed by nobody. So the tasks are cancelled again every ``round_s`` until they are all done or
``grace_s`` has passed; the names of any still running are returned for the log, and the caller
closes its files either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[object]], *, grace_s: float = 10.0, round_s: float = 0.5
) -> list[str]:
    """Cancel ``tasks`` (again each round) until done or ``grace_s``; names still running."""
    if grace_s < 0 or round_s <= 0:
        raise ValueError(f"grace_s must be >= 0 and round_s > 0, got {grace_s}, {round_s}")
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _done, pending = await asyncio.wait(pending, timeout=min(round_s, left))
    return sorted(t.get_name() for t in pending)
