"""Telemetry step: SiteTelemetry bytes -> windows (one per ``settings.aggregation.windows_s``)
and, optionally, a site book.

Pure (no Faust, no Kafka). :class:`TelemetryStep` is generic over what a closed window
becomes: a FleetState (``TelemetryAggregator``: every site of a fleet in one step, benches
and tests), or one partition's :class:`~streams.steps.slices.WindowSlice` (the worker: each
telemetry partition its own step and stream time, ``steps.site_partition``). A window's
result is emitted once, when the step's watermark passes its end plus the grace period; the
book, when there is one, is fed with the same decode (``TelemetryBook``: newest event time
wins per site).

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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

import numpy as np

from contract.codec import raw_codec
from contract.columnar import ColumnarDecoder
from contract.errors import InvalidEventError
from contract.records import FleetState, SiteTelemetry
from streams.steps.deadletter import ConsumedRecord, dead_letter_of
from streams.steps.fleet_aggregation import (
    FleetAggregator,
    R,
    TumblingWindows,
    sample_of,
    sample_of_plain,
)
from streams.steps.plain import telemetry_plainly_valid
from streams.steps.sitebook import SiteBook
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


class TelemetryBook(Protocol):
    """The site book a telemetry step feeds (``streams.agents.sitebook.SiteBook``)."""

    @property
    def last_seen(self) -> dict[str, int]: ...

    def update_telemetry(self, record: Mapping[str, Any]) -> SiteTelemetry: ...

    def update_plain_telemetry(
        self, site_id: str, event_time: int, record: Mapping[str, Any]
    ) -> None: ...

    def update_plain_batch(
        self, latest: Iterable[tuple[str, int, int]], source: Any, updates: int
    ) -> None: ...


@dataclass
class BatchOutcome(Generic[R]):
    """What one batch produced: the results of the windows it closed (in order; FleetStates
    or slices) and the DeadLetter records of the records it rejected (in offset order)."""

    states: list[R] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0


class TelemetryStep(Generic[R]):
    """Windows of every configured length (``windows``), and the book they feed (None: no
    book)."""

    def __init__(
        self,
        windows: Sequence[TumblingWindows[R]],
        book: TelemetryBook | None,
        *,
        columnar_from: int = COLUMNAR_FROM,
    ) -> None:
        """``columnar_from``: batches of at least this many records take the columnar path
        (the same outcome; numpy's fixed costs do not pay for a handful of records)."""
        self.columnar_from = columnar_from
        self.book = book
        self.windows = list(windows)
        self._decode = raw_codec().decode
        schema = raw_codec().registry.current(EVENT)
        self._columnar = ColumnarDecoder(schema.raw, schema.fingerprint)

    def add(self, record: dict[str, Any]) -> Sequence[R]:
        """Fold one decoded telemetry record in; the FleetStates of the windows it closed.

        ``record`` as the raw codec decodes it takes the fast path (and is kept by the book:
        the caller must not change it afterwards); any other spelling (e.g. the default
        codec's datetimes) is validated and converted by ``SiteTelemetry.from_record``.
        ``InvalidRecordError`` when it is not a valid SiteTelemetry.
        """
        book = self.book
        if telemetry_plainly_valid(record):
            sample = sample_of_plain(record)
            site_id: str = record["site_id"]
            if book is not None:
                book.update_plain_telemetry(site_id, sample.event_time, record)
        else:
            # raises the precise error
            telemetry = (
                SiteTelemetry.from_record(record) if book is None else book.update_telemetry(record)
            )
            sample, site_id = sample_of(telemetry), telemetry.site_id
        closed: Sequence[R] = ()
        for windows in self.windows:  # validated once, one sample for every window length
            more = windows.add_sample(site_id, sample)
            if more:
                closed = [*closed, *more]
        return closed

    def add_value(self, value: bytes | None) -> Sequence[R]:
        """Decode one raw value (raw codec) and ``add`` it; a typed ``EventError`` when it is
        not a SiteTelemetry of ours (``InvalidEventError`` for a tombstone or another event)."""
        if value is None:
            raise InvalidEventError("no value (tombstone) on the telemetry topic")
        decoded = self._decode(value)
        if decoded.name != EVENT:
            raise InvalidEventError(f"{decoded.name} does not belong on site.telemetry")
        return self.add(decoded.record)

    def add_batch(self, records: Iterable[ConsumedRecord], now: int) -> BatchOutcome[R]:
        """Fold consumed records in, in order; rejected ones become dead letters stamped
        ``now`` (us). Never raises for bad input.

        Column-wise (module doc) for the records the batch path decodes and checks, one by
        one for the others, in order: the outcome, windows and book are those of
        :meth:`add_records`."""
        batch = records if isinstance(records, list) else list(records)
        if len(batch) < self.columnar_from:
            return self.add_records(batch, now)
        columns = telemetry_columns(self._columnar.decode([r.value for r in batch]))
        outcome: BatchOutcome[R] = BatchOutcome()
        done = 0
        for slow in [*np.flatnonzero(~columns.fast).tolist(), len(batch)]:
            if slow > done:
                self._fold_fast(columns, np.arange(done, slow), outcome)
            if slow < len(batch):
                self._add_one(batch[slow], now, outcome)
            done = slow + 1
        return outcome

    def _fold_fast(self, columns: TelemetryColumns, rows: Rows, outcome: BatchOutcome[R]) -> None:
        """Rows the batch path accepted (in order): book, then every window length."""
        samples = columns.samples
        book = self.book
        if book is not None:
            self._book_batch(book, columns, rows)
        closed = [
            (row, k, start, state)
            for k, windows in enumerate(self.windows)
            for row, start, state in fold_rows(windows, samples, rows)
        ]
        closed.sort(key=lambda c: c[:3])
        outcome.states.extend(c[3] for c in closed)
        outcome.accepted += len(rows)

    @staticmethod
    def _book_batch(book: TelemetryBook, columns: TelemetryColumns, rows: Rows) -> None:
        samples = columns.samples
        sites = samples.site[rows]
        latest, updates = latest_per_site(
            sites, samples.event_time[rows], samples.site_names, book.last_seen
        )
        if updates:
            kept = rows[latest]
            names = samples.site_names
            book.update_plain_batch(
                zip(
                    [names[c] for c in samples.site[kept].tolist()],
                    samples.event_time[kept].tolist(),
                    kept.tolist(),
                    strict=True,
                ),
                columns,
                updates,
            )

    def _add_one(self, record: ConsumedRecord, now: int, outcome: BatchOutcome[R]) -> None:
        try:
            closed = self.add_value(record.value)
        except Exception as exc:  # bad input (EventError) or a step bug: never fatal
            outcome.dead_letters.append(dead_letter_of(record, exc, NAME, now))
            return
        outcome.accepted += 1
        if closed:
            outcome.states.extend(closed)

    def add_records(self, records: Iterable[ConsumedRecord], now: int) -> BatchOutcome[R]:
        """``add_batch`` record by record (the reference the batch path is tested against)."""
        outcome: BatchOutcome[R] = BatchOutcome()
        for record in records:
            self._add_one(record, now, outcome)
        return outcome


class TelemetryAggregator(TelemetryStep[FleetState]):
    """Every site of a fleet in one step: FleetStates of the configured window lengths (one
    stream time for every partition it is fed: benches and tests; the worker aggregates
    per partition, ``steps.site_partition``), and the site book."""

    book: SiteBook

    def __init__(
        self, settings: Any, book: SiteBook, *, columnar_from: int = COLUMNAR_FROM
    ) -> None:
        """``settings``: ``StreamsSettings`` (``fleet_id``, ``aggregation``)."""
        self.settings = settings
        agg = settings.aggregation
        windows = [
            TumblingWindows(FleetAggregator(settings.fleet_id, w), agg.grace_s)
            for w in agg.windows_s
        ]
        super().__init__(windows, book, columnar_from=columnar_from)
