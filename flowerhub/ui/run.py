"""``flowerhub ui`` wiring: the view model, its source (Kafka or an archive), the server.

:func:`serve` checks the bind and the front-end files first (a clear error, before any
connection), fills the model (an archive is read before the server listens; Kafka is read
live while it serves), listens, calls ``ready(url)`` and runs until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from contract.kafka.settings import KafkaSettings
from flowerhub.ui.archive import load_archive
from flowerhub.ui.auth import Access, check_bind, is_loopback
from flowerhub.ui.feed import CONSUMER_STOP_S, FeedConfig, KafkaFeed
from flowerhub.ui.fold import Folder
from flowerhub.ui.model import ViewModel
from flowerhub.ui.reports import ReportIndex
from flowerhub.ui.server import UiState, build_app, check_frontend
from flowerhub.ui.views import FeedState, Source

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
SHUTDOWN_S = 2.0  # open SSE streams and requests get this long to end
FEED_STOP_S = 3.0  # the Kafka feed ends by itself within this, else it is cancelled
# SIGTERM -> exit, even with Kafka frozen or gone (issue 15): the feed (cancelled at
# FEED_STOP_S, its consumer then stopped within CONSUMER_STOP_S and 1 s to close its
# connections), then the server's open requests
UI_STOP_S = FEED_STOP_S + CONSUMER_STOP_S + 1.0 + SHUTDOWN_S


class UiError(RuntimeError):
    """The UI cannot start (bind refused, port in use, front-end missing, bad archive)."""


@dataclass(frozen=True)
class UiConfig:
    """What ``flowerhub ui`` serves, and where."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    kafka: KafkaSettings | None = None
    prefix: str = ""
    archive: Path | None = None
    reports: tuple[Path, ...] = ()
    window_s: int = 900
    lookback_s: float = 86_400.0
    access: Access = field(default_factory=Access)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.kafka is None) == (self.archive is None):
            raise UiError(
                "the UI reads either Kafka (the connection flags) or an archive (--archive)"
            )
        if not 0 <= self.port <= 65_535:
            raise UiError(f"--port must be 0..65535, got {self.port}")
        if not 60 <= self.window_s <= 86_400:
            raise UiError(f"--window must be 60..86400 s, got {self.window_s}")
        if not self.lookback_s >= self.window_s:
            raise UiError("--lookback must be at least --window")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UiError("--tls-cert and --tls-key go together")

    def report_roots(self) -> tuple[Path, ...]:
        """``--reports``, else the directory the archive sits in (a demo run: ``report/``)."""
        if self.reports:
            return self.reports
        return (self.archive.parent,) if self.archive is not None else ()


def wall_clock_us() -> int:
    return time.time_ns() // 1000


def url_of(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


def _ssl_context(config: UiConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UiError(f"TLS certificate/key: {exc}") from exc
    return context


def prepare(config: UiConfig, progress: Callable[[str], None] | None = None) -> UiState:
    """The model filled from an archive, or empty and waiting for the Kafka feed."""
    try:
        check_bind(config.host, config.access)
        check_frontend()
    except (ValueError, RuntimeError) as exc:
        raise UiError(str(exc)) from exc
    archive = config.archive
    model = ViewModel(window_s=config.window_s, clock=None if archive else wall_clock_us)
    feed = FeedState()
    if archive is not None:
        source = Source("archive", f"archive {archive}")
        started = time.monotonic()
        try:
            count = load_archive(
                Folder(model), archive, window_s=config.window_s, lookback_s=config.lookback_s
            )
        except ValueError as exc:
            raise UiError(str(exc)) from exc
        feed.loading, feed.progress = False, 1.0
        if progress is not None:
            progress(f"archive {archive}: {count:,} records in {time.monotonic() - started:.1f} s")
    else:
        where = f", topics {config.prefix}*" if config.prefix else ""
        source = Source("live", f"Kafka {config.kafka.describe() if config.kafka else ''}{where}")
    return UiState(
        model=model,
        source=source,
        feed=feed,
        reports=ReportIndex(config.report_roots()),
        access=config.access,
        loopback_bind=is_loopback(config.host),
        tls=config.tls_cert is not None,
    )


async def serve(
    config: UiConfig,
    stop: asyncio.Event,
    *,
    ready: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Serve the UI until ``stop`` is set (see the module doc)."""
    state = await asyncio.to_thread(prepare, config, progress)
    context = _ssl_context(config)
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    feed_task: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(
            runner, config.host, config.port, ssl_context=context, shutdown_timeout=SHUTDOWN_S
        )
        try:
            await site.start()
        except OSError as exc:
            raise UiError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        port = int(runner.addresses[0][1])
        if not state.loopback_bind and context is None:
            log.warning(
                "serving on %s without TLS: the token/password crosses the network in clear "
                "text (use --tls-cert/--tls-key or a TLS proxy)",
                config.host,
            )
        if config.kafka is not None:
            feed = KafkaFeed(
                FeedConfig(config.kafka, config.prefix, config.window_s, config.lookback_s),
                Folder(state.model),
                state.feed,
                state.pulse.notify,
            )
            feed_task = asyncio.create_task(feed.run(stop))
        if ready is not None:
            ready(url_of(config.host, port, context is not None))
        await stop.wait()
    finally:
        stop.set()
        if feed_task is not None:
            await _stop_feed(feed_task)
        await runner.cleanup()


async def _stop_feed(task: asyncio.Task[None]) -> None:
    """Wait for the feed to stop, at most ``FEED_STOP_S`` (then it is cancelled: a consumer
    still starting against an unreachable broker)."""
    done, _ = await asyncio.wait({task}, timeout=FEED_STOP_S)
    if not done:
        log.warning("the Kafka feed did not stop within %g s: cancelled", FEED_STOP_S)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
