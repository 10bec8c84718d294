"""Decode a batch of Kafka values and fold it into the view model (pure: no Kafka, no I/O).

Shared by the live feed (:mod:`flowerhub.ui.feed`) and the archive loader
(:mod:`flowerhub.ui.archive`). Values are decoded with the project's codec in raw mode
(``contract.codec.raw_codec``); a telemetry batch of at least ``COLUMNAR_FROM`` values is
decoded column-wise (``contract.columnar``: one numpy pass per field instead of one fastavro
call per value) and only the rows it flags (other writer versions, anything not decoded
exactly as the codec would) go through the codec one by one.

A value the codec rejects is counted per topic with its error (``stats.undecodable``, shown
on the page) and skipped; a tombstone (``None``, on the compacted topics) means nothing to
the UI and is skipped. Nothing here raises for bad input.

Topics are folded in a fixed order within a batch (:data:`TOPIC_ORDER`): activations before
the verdicts that judge them, fleet windows before the verdicts judged on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from contract.codec import raw_codec
from contract.columnar import ColumnarDecoder, ColumnBatch
from contract.errors import EventDecodeError
from flowerhub.ui.model import SITE_BASELINE_FIELD, ViewModel
from flowerhub.ui.sites import TelemetryRow

log = logging.getLogger(__name__)

COLUMNAR_FROM = 64  # numpy's fixed costs do not pay for a handful of values
TELEMETRY_TOPIC = "site.telemetry"
TELEMETRY_EVENT = "SiteTelemetry"
#: the topics the UI reads (unprefixed), in the order a batch is folded
TOPIC_ORDER: tuple[str, ...] = (
    "market.activations",
    "reserve.assignments",
    "fleet.state",
    "compliance.verdicts",
    "site.device-status",
    "site.faults",
    "site.telemetry",
    "site.command-results",
)
_TELEMETRY_COLUMNS = (
    "site_id",
    "event_time",
    "oem",
    "model",
    "battery_power_kw",
    "soc_pct",
    "setpoint_kw",
    "frequency_hz",
    "mode",
    "faulted",
    "reserve_armed",
)


def unprefixed(topic: str, prefix: str) -> str | None:
    """The topic table name of ``topic`` under ``prefix``, if the UI reads it."""
    if not topic.startswith(prefix):
        return None
    name = topic[len(prefix) :]
    return name if name in TOPIC_ORDER else None


class Folder:
    """Decodes values and folds them into ``model`` (see the module doc)."""

    def __init__(self, model: ViewModel, *, columnar_from: int = COLUMNAR_FROM) -> None:
        self.model = model
        self.columnar_from = columnar_from
        codec = raw_codec()
        self._decode = codec.decode
        schema = codec.registry.current(TELEMETRY_EVENT)
        self._columnar = ColumnarDecoder(schema.raw, schema.fingerprint)
        self._baseline = SITE_BASELINE_FIELD in self._columnar.field_names

    def fold_batches(self, batches: Mapping[str, Sequence[bytes | None]]) -> None:
        """Values per unprefixed topic (each in its order), folded in ``TOPIC_ORDER``."""
        for topic in TOPIC_ORDER:
            values = batches.get(topic)
            if values:
                self.fold(topic, values)

    def fold(self, topic: str, values: Sequence[bytes | None]) -> None:
        """One topic's values, in order."""
        self.model.count(topic, len(values))
        if topic == TELEMETRY_TOPIC and len(values) >= self.columnar_from:
            self._fold_telemetry(values)
            return
        for value in values:
            self._fold_one(topic, value)

    def _fold_one(self, topic: str, value: bytes | None) -> None:
        if value is None:
            return
        try:
            decoded = self._decode(value)
        except EventDecodeError as exc:
            self.model.undecodable(topic, f"{type(exc).__name__}: {exc}")
            return
        self.model.apply(decoded.name, decoded.record)

    def _fold_telemetry(self, values: Sequence[bytes | None]) -> None:
        batch = self._columnar.decode(values)
        ok = np.flatnonzero(batch.ok)
        for row in self._rows(batch, ok):
            self.model.telemetry_row(row)
        for i in np.flatnonzero(~batch.ok).tolist():
            self._fold_one(TELEMETRY_TOPIC, values[i])

    def _rows(self, batch: ColumnBatch, rows: npt.NDArray[np.intp]) -> Iterable[TelemetryRow]:
        if not len(rows):
            return ()
        columns = [batch.values(name, rows) for name in _TELEMETRY_COLUMNS]
        columns.append(
            batch.values(SITE_BASELINE_FIELD, rows) if self._baseline else [None] * len(rows)
        )
        return map(TelemetryRow._make, zip(*columns, strict=True))
