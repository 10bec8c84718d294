"""The worker's root logger after Faust's terminal spinner (``--loglevel warn`` and above).

Faust's worker sets the root logger to DEBUG for its spinner; ``undo_spinner_debug`` puts it
back to the level ``--loglevel`` gave the handler, so debug calls stop building records.
The Faust part is Faust's own ``Worker.on_setup_root_logger`` on a private logger (nothing
is started, no broker).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import faust
import pytest

from streams.app import StreamsApp, build, settings_with, undo_spinner_debug
from streams.testing.agents import close_app


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-logging"))
    yield app
    close_app(app)


def _logger(name: str, handler_level: int) -> logging.Logger:
    logger = logging.Logger(name)
    handler = logging.StreamHandler(io.StringIO())
    handler.setLevel(handler_level)
    logger.addHandler(handler)
    return logger


# (--loglevel, root level Faust leaves, root level after undo_spinner_debug)
LEVELS = [
    ("warn", logging.WARNING, logging.DEBUG, logging.WARNING),
    ("error", logging.ERROR, logging.DEBUG, logging.ERROR),
    ("info", logging.INFO, logging.NOTSET, logging.NOTSET),  # no spinner below WARN
]


@pytest.mark.parametrize(("loglevel", "level", "faust_root", "ours"), LEVELS)
def test_spinner_debug_level_is_undone(
    built: StreamsApp, loglevel: str, level: int, faust_root: int, ours: int
) -> None:
    worker = faust.Worker(built.app, loglevel=loglevel, quiet=True, stdout=io.StringIO())
    logger = _logger(f"root-{loglevel}", level)
    worker.on_setup_root_logger(logger, level)
    assert logger.level == faust_root
    undo_spinner_debug(logger)
    assert logger.level == ours
    assert not logger.isEnabledFor(logging.DEBUG) or ours == logging.NOTSET


def test_a_debug_loglevel_stays_debug() -> None:
    logger = _logger("root-debug", logging.DEBUG)
    logger.setLevel(logging.DEBUG)
    undo_spinner_debug(logger)
    assert logger.level == logging.DEBUG
