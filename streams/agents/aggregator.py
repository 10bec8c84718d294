"""Telemetry aggregation step: SiteTelemetry bytes -> FleetStates (1 s and 10 s) + site book.

Pure (no Faust, no Kafka): ``streams.agents.telemetry_service`` consumes ``site.telemetry``
in batches and calls :meth:`TelemetryAggregator.add_batch`; benches and tests call it too.

One decode per telemetry event feeds both the event-time tumbling windows
(``fleet_aggregation.TumblingWindows``, one per ``settings.aggregation.windows_s``) and the
worker's :class:`~streams.agents.sitebook.SiteBook` (the allocator's and compliance's view of
the sites). A window's FleetState is emitted once, when the watermark passes its end plus the
grace period. Windows are memory only: a restart loses the open windows (at most the longest
window, 10 s); their event ids are deterministic (fleet, window length, start), so a window
emitted twice around a restart is recognisable downstream. Fleet-wide, so the fleet app
runs as one worker (see ``sitebook``).

Batch path (``add_batch`` of ``COLUMNAR_FROM`` records or more; what the worker's service
calls per ``getmany``): the whole batch is decoded column-wise
(``contract.columnar.ColumnarDecoder`` over the current SiteTelemetry schema), checked on
columns with ``telemetry_plainly_valid``'s checks (``steps.telemetry_columns``), folded
into every window length at once (``steps.window_fold``: the same closes, late events and
FleetStates as record by record) and into the book (each site's last accepted row, its
record materialised only when the book is read). Any record that path does not take (an
older writer schema, other framing, a tombstone, bad bytes, a record the plain checks do
not accept) goes through the per-record path below at its place in the batch, so the
outcome equals :meth:`TelemetryAggregator.add_records` (tests/property/
test_streams_columnar_batch.py).

Per-record path: the raw codec (int microseconds, str uuids), then
``records_site.telemetry_plainly_valid`` (types are the schema's after decoding; only the
semantic checks remain), one ``SiteSample`` shared by both window lengths, and the decoded
dict kept by the book as it is. Any record that check does not accept takes the full
``SiteTelemetry.from_record`` path: the precise typed error (dead letter) or the same result.

Bad input never stops the step: a record that does not decode, is not a SiteTelemetry or is
not a valid one becomes a DeadLetter record (``steps.deadletter``: reason, original key and
value bytes, event id from topic/partition/offset) in the batch's outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.codec import raw_codec
from contract.columnar import ColumnarDecoder
from contract.errors import InvalidEventError
from contract.records import FleetState
from streams.agents.sitebook import SiteBook
from streams.settings import StreamsSettings
from streams.steps.deadletter import ConsumedRecord, dead_letter_of
from streams.steps.fleet_aggregation import (
    FleetAggregator,
    TumblingWindows,
    sample_of,
    sample_of_plain,
)
from streams.steps.plain import telemetry_plainly_valid
from streams.steps.telemetry_columns import (
    Rows,
    TelemetryColumns,
    latest_per_site,
    telemetry_columns,
)
from streams.steps.window_fold import fold_rows

NAME = "fleet-aggregator"
EVENT = "SiteTelemetry"
# records in a batch from which add_batch goes column-wise: below it numpy's fixed costs and
# the book's record materialisation cost more than record by record (measured, 1,000 sites
# in order: 100 records 17.5 against 12.5 us/event, 200 even, 400 10.8 against 12.5)
COLUMNAR_FROM = 256


@dataclass
class BatchOutcome:
    """What one batch produced: FleetStates of the windows it closed (in order) and the
    DeadLetter records of the records it rejected (in offset order)."""

    states: list[FleetState] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0


class TelemetryAggregator:
    """The windows of every configured length plus the site book they feed."""

    def __init__(
        self, settings: StreamsSettings, book: SiteBook, *, columnar_from: int = COLUMNAR_FROM
    ) -> None:
        """``columnar_from``: batches of at least this many records take the columnar path
        (the same outcome; numpy's fixed costs do not pay for a handful of records)."""
        self.settings = settings
        self.columnar_from = columnar_from
        self.book = book
        agg = settings.aggregation
        self.windows = [
            TumblingWindows(FleetAggregator(settings.fleet_id, w), agg.grace_s)
            for w in agg.windows_s
        ]
        self._decode = raw_codec().decode
        schema = raw_codec().registry.current(EVENT)
        self._columnar = ColumnarDecoder(schema.raw, schema.fingerprint)

    def add(self, record: dict[str, Any]) -> Sequence[FleetState]:
        """Fold one decoded telemetry record in; the FleetStates of the windows it closed.

        ``record`` as the raw codec decodes it takes the fast path (and is kept by the book:
        the caller must not change it afterwards); any other spelling (e.g. the default
        codec's datetimes) is validated and converted by ``SiteTelemetry.from_record``.
        ``InvalidRecordError`` when it is not a valid SiteTelemetry.
        """
        if telemetry_plainly_valid(record):
            sample = sample_of_plain(record)
            site_id: str = record["site_id"]
            self.book.update_plain_telemetry(site_id, sample.event_time, record)
        else:
            telemetry = self.book.update_telemetry(record)  # raises the precise error
            sample, site_id = sample_of(telemetry), telemetry.site_id
        closed: Sequence[FleetState] = ()
        for windows in self.windows:  # validated once, one sample for every window length
            more = windows.add_sample(site_id, sample)
            if more:
                closed = [*closed, *more]
        return closed

    def add_value(self, value: bytes | None) -> Sequence[FleetState]:
        """Decode one raw value (raw codec) and ``add`` it; a typed ``EventError`` when it is
        not a SiteTelemetry of ours (``InvalidEventError`` for a tombstone or another event)."""
        if value is None:
            raise InvalidEventError("no value (tombstone) on the telemetry topic")
        decoded = self._decode(value)
        if decoded.name != EVENT:
            raise InvalidEventError(f"{decoded.name} does not belong on site.telemetry")
        return self.add(decoded.record)

    def add_batch(self, records: Iterable[ConsumedRecord], now: int) -> BatchOutcome:
        """Fold consumed records in, in order; rejected ones become dead letters stamped
        ``now`` (us). Never raises for bad input.

        Column-wise (module doc) for the records the batch path decodes and checks, one by
        one for the others, in order: the outcome, windows and book are those of
        :meth:`add_records`."""
        batch = records if isinstance(records, list) else list(records)
        if len(batch) < self.columnar_from:
            return self.add_records(batch, now)
        columns = telemetry_columns(self._columnar.decode([r.value for r in batch]))
        outcome = BatchOutcome()
        done = 0
        for slow in [*np.flatnonzero(~columns.fast).tolist(), len(batch)]:
            if slow > done:
                self._fold_fast(columns, np.arange(done, slow), outcome)
            if slow < len(batch):
                self._add_one(batch[slow], now, outcome)
            done = slow + 1
        return outcome

    def _fold_fast(self, columns: TelemetryColumns, rows: Rows, outcome: BatchOutcome) -> None:
        """Rows the batch path accepted (in order): book, then every window length."""
        samples = columns.samples
        sites = samples.site[rows]
        latest, updates = latest_per_site(
            sites, samples.event_time[rows], samples.site_names, self.book.last_seen
        )
        if updates:
            kept = rows[latest]
            names = samples.site_names
            self.book.update_plain_batch(
                zip(
                    [names[c] for c in samples.site[kept].tolist()],
                    samples.event_time[kept].tolist(),
                    kept.tolist(),
                    strict=True,
                ),
                columns,
                updates,
            )
        closed = [
            (row, k, start, state)
            for k, windows in enumerate(self.windows)
            for row, start, state in fold_rows(windows, samples, rows)
        ]
        closed.sort(key=lambda c: c[:3])
        outcome.states.extend(c[3] for c in closed)
        outcome.accepted += len(rows)

    def _add_one(self, record: ConsumedRecord, now: int, outcome: BatchOutcome) -> None:
        try:
            closed = self.add_value(record.value)
        except Exception as exc:  # bad input (EventError) or a step bug: never fatal
            outcome.dead_letters.append(dead_letter_of(record, exc, NAME, now))
            return
        outcome.accepted += 1
        if closed:
            outcome.states.extend(closed)

    def add_records(self, records: Iterable[ConsumedRecord], now: int) -> BatchOutcome:
        """``add_batch`` record by record (the reference the batch path is tested against)."""
        outcome = BatchOutcome()
        for record in records:
            self._add_one(record, now, outcome)
        return outcome
