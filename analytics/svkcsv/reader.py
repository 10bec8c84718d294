"""Read SvK prequalification CSV files into :class:`~analytics.timeseries.Series` (issue 8).

Product and test type come from the file name unless overridden. Every problem raises a
subclass of :class:`~analytics.svkcsv.errors.SvkCsvError` naming the file, the 1-based line
(1 = header) and the column:

* non-ASCII bytes (:class:`EncodingError`);
* unknown headers - anything not in SvK's signal list or our documented extensions - and
  units other than the signal's own (:class:`UnknownColumnError`, :class:`UnknownUnitError`);
* missing required columns (:class:`MissingColumnError`): DateTime and InsAcPow always; a
  frequency (ApplFreqSig or GridFreq) for FCR and FFR; ReqAcPow for aFRR/mFRR activations;
* rows with the wrong field count or a value that is not a finite number
  (:class:`RowFormatError`), time stamps not ``YYYYMMDDThhmmss.nnn`` (:class:`TimestampError`);
* time stamps that do not increase (:class:`NonMonotonicError`), intervals that differ from
  the file name's sampling rate by more than 1 ms (:class:`IrregularSamplingError`), and a
  sampling rate coarser than the product's requirement, named (:class:`SamplingRateError`);
* time stamps outside the file name's Interval (``[start, end + 1 min)``: writers differ in
  rounding the end minute) (:class:`TimestampError`);
* an FFR activation level (column ``ActLevel_Ffr``) that changes within the file, is not
  an FFR option, or contradicts the level in the file name (:class:`RowFormatError`).

CRLF and LF line ends are both read (they do not change the data); the writer emits CRLF.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analytics.rules import required_sampling
from analytics.svkcsv.errors import (
    EncodingError,
    IrregularSamplingError,
    MissingColumnError,
    NonMonotonicError,
    RowFormatError,
    SamplingRateError,
    SvkCsvError,
    TimestampError,
    UnknownColumnError,
    UnknownUnitError,
)
from analytics.svkcsv.names import SIGNAL_UNITS, SvkFileName
from analytics.svkcsv.writer import SERIES_COLUMNS, column_name
from analytics.timeseries import FloatArray, Series
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import FFR_OPTIONS

LEVEL_COLUMN = "ActLevel_Ffr"
_HEADER_RE = re.compile(r"^(?P<name>[A-Za-z_]+?)(?P<suffix>\d*)(?:\s*\[(?P<unit>[^\]]*)\])?$")
_TS_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})$")


@dataclass(frozen=True)
class SvkRecord:
    """One file: its parsed name (with overrides applied), the series, all columns."""

    path: Path
    name: SvkFileName
    series: Series
    columns: dict[str, FloatArray]

    @property
    def ffr_activation_hz(self) -> float | None:
        """The FFR activation level the file carries (name or column), if any."""
        if self.name.activation_hz is not None:
            return self.name.activation_hz
        level = self.columns.get(LEVEL_COLUMN)
        return None if level is None else float(level[0])


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col_text = raw[: exc.start].rsplit(b"\n", 1)[-1]
        raise EncodingError(
            path,
            f"non-ASCII byte 0x{raw[exc.start]:02x} at character {len(col_text) + 1}",
            line=line,
        ) from None


def _headers(path: Path, line: str, suffix: str) -> list[str]:
    out: list[str] = []
    for i, raw in enumerate(line.split(","), start=1):
        cell = raw.strip()
        m = _HEADER_RE.match(cell)
        base = m["name"] if m else cell
        if m and m["suffix"] and m["suffix"] != suffix:
            base = cell  # a number that is not this file's sine period
        if base not in SIGNAL_UNITS:
            raise UnknownColumnError(
                path,
                "not in SvK's signal list (TR25 Table 18) or the FlowerHub extensions",
                line=1,
                column=cell or "<empty>",
                column_index=i,
            )
        if m and m["unit"] is not None and m["unit"].strip() != SIGNAL_UNITS[base]:
            raise UnknownUnitError(
                path,
                f"unit {m['unit']!r}; {base} is in {SIGNAL_UNITS[base] or 'no unit'}",
                line=1,
                column=cell,
                column_index=i,
            )
        if base in out:
            raise UnknownColumnError(path, "duplicate column", line=1, column=cell, column_index=i)
        out.append(base)
    return out


def _required(product: Product, test_type: TestType) -> list[tuple[str, ...]]:
    """Alternatives per required column (one of each tuple must be present)."""
    need: list[tuple[str, ...]] = [("DateTime",), ("InsAcPow",)]
    if product in (Product.AFRR, Product.MFRR):
        if test_type is TestType.ACTIVATION:
            need.append(("ReqAcPow",))
    elif test_type is TestType.OPERATION:
        need.append(("GridFreq",))
    else:
        need.append(("ApplFreqSig", "GridFreq"))
    return need


def _timestamps(path: Path, cells: list[str], col: int) -> npt.NDArray[np.int64]:
    iso: list[str] = []
    for i, cell in enumerate(cells):
        m = _TS_RE.match(cell)
        if m is None:
            raise TimestampError(
                path,
                f"{cell!r} is not YYYYMMDDThhmmss.nnn",
                line=i + 2,
                column="DateTime",
                column_index=col,
            )
        y, mo, d, h, mi, s, ms = m.groups()
        iso.append(f"{y}-{mo}-{d}T{h}:{mi}:{s}.{ms}")
    try:
        return np.array(iso, dtype="datetime64[ms]").astype(np.int64)
    except ValueError:
        for i, text in enumerate(iso):
            try:
                np.datetime64(text, "ms")
            except ValueError:
                raise TimestampError(
                    path,
                    f"{cells[i]!r} is not a valid date/time",
                    line=i + 2,
                    column="DateTime",
                    column_index=col,
                ) from None
        raise  # unreachable: some stamp failed above


def _values(path: Path, header: str, cells: list[str], col: int) -> FloatArray:
    try:
        arr = np.array(cells, dtype=np.float64)
    except ValueError:
        arr = None
    if arr is not None and bool(np.all(np.isfinite(arr))):
        return arr
    for i, cell in enumerate(cells):
        try:
            ok = np.isfinite(float(cell))
        except ValueError:
            ok = False
        if not ok:
            raise RowFormatError(
                path,
                f"{cell!r} is not a finite number",
                line=i + 2,
                column=header,
                column_index=col,
            )
    raise RowFormatError(path, "unparseable values", column=header)  # pragma: no cover


def _check_time(
    path: Path, ms: npt.NDArray[np.int64], name: SvkFileName, *, allow_1hz: bool, col: int
) -> None:
    steps = np.diff(ms)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise NonMonotonicError(
            path, "time stamp does not increase", line=i + 2, column="DateTime", column_index=col
        )
    nominal = name.sampling_ms
    off = np.flatnonzero(np.abs(steps - nominal) > 1)
    if off.size:
        i = int(off[0]) + 1
        raise IrregularSamplingError(
            path,
            f"interval {int(steps[i - 1])} ms, the file's sampling rate is {nominal} ms",
            line=i + 2,
            column="DateTime",
            column_index=col,
        )
    need = required_sampling(name.product, name.test_type, allow_1hz=allow_1hz)
    if need is not None and nominal > need.max_interval_s * 1000 * 1.01:
        raise SamplingRateError(
            path,
            f"sampled every {nominal} ms; {need.name} needs <= {need.max_interval_s * 1000:.0f} ms",
            line=3,
            column="DateTime",
            column_index=col,
        )
    lo = np.datetime64(name.interval_start, "ms").astype(np.int64)
    hi = np.datetime64(name.interval_end, "ms").astype(np.int64) + 60_000
    outside = np.flatnonzero((ms < lo) | (ms >= hi))
    if outside.size:
        raise TimestampError(
            path,
            "time stamp outside the file name's Interval",
            line=int(outside[0]) + 2,
            column="DateTime",
            column_index=col,
        )


def _check_level(path: Path, level: FloatArray, name: SvkFileName, col: int) -> None:
    """One FFR option throughout, agreeing with the file name's level."""
    if name.product is not Product.FFR:
        raise UnknownColumnError(
            path, "an activation level is for FFR files", line=1, column=LEVEL_COLUMN
        )
    moved = np.flatnonzero(np.abs(level - level[0]) > 1e-6)
    if moved.size:
        raise RowFormatError(
            path,
            f"the activation level changes from {level[0]:g} to {level[moved[0]]:g} Hz",
            line=int(moved[0]) + 2,
            column=LEVEL_COLUMN,
            column_index=col,
        )
    if not any(abs(level[0] - hz) < 1e-6 for hz in FFR_OPTIONS):
        raise RowFormatError(
            path,
            f"{level[0]:g} Hz is not an FFR activation level "
            f"({', '.join(f'{hz:g}' for hz in FFR_OPTIONS)})",
            line=2,
            column=LEVEL_COLUMN,
            column_index=col,
        )
    if name.activation_hz is not None and abs(name.activation_hz - level[0]) > 1e-6:
        raise RowFormatError(
            path,
            f"the column says {level[0]:g} Hz, the file name {name.activation_hz:g} Hz",
            line=2,
            column=LEVEL_COLUMN,
            column_index=col,
        )


def read_csv(
    path: str | Path,
    *,
    product: Product | None = None,
    test_type: TestType | None = None,
    allow_1hz: bool = False,
) -> SvkRecord:
    """Read one SvK CSV file; ``product``/``test_type`` override the file name."""
    path = Path(path)
    name = SvkFileName.parse(path).with_overrides(product, test_type)
    text = _decode(path, path.read_bytes())
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise MissingColumnError(path, "no header line", line=1)
    headers = _headers(path, lines[0], name.header_suffix)
    for alternatives in _required(name.product, name.test_type):
        if not any(a in headers for a in alternatives):
            raise MissingColumnError(
                path,
                f"required for {name.product.value} {name.test_type.value}",
                line=1,
                column=" or ".join(alternatives),
            )
    rows = [line.split(",") for line in lines[1:]]
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise RowFormatError(
                path, f"{len(row)} fields, the header has {len(headers)}", line=i + 2
            )
    if len(rows) < 2:
        raise RowFormatError(path, f"needs at least 2 data rows, found {len(rows)}")
    cells = [list(col) for col in zip(*rows, strict=True)]
    t_col = headers.index("DateTime")
    ms = _timestamps(path, [c.strip() for c in cells[t_col]], t_col + 1)
    _check_time(path, ms, name, allow_1hz=allow_1hz, col=t_col + 1)
    columns = {
        h: _values(path, h, cells[i], i + 1) for i, h in enumerate(headers) if h != "DateTime"
    }
    if LEVEL_COLUMN in columns:
        _check_level(path, columns[LEVEL_COLUMN], name, headers.index(LEVEL_COLUMN) + 1)
    signals = {
        attr: columns[column_name(prefix, name.product)]
        for prefix, attr in SERIES_COLUMNS
        if column_name(prefix, name.product) in columns
    }
    used = {column_name(prefix, name.product) for prefix, _ in SERIES_COLUMNS}
    extra = {h: v for h, v in columns.items() if h not in used}
    start = np.datetime64(int(ms[0]), "ms").astype("datetime64[us]")
    t = (ms - ms[0]).astype(np.float64) / 1000.0
    series = Series(t=t, start=start, source=str(path), extra=extra, **signals)
    return SvkRecord(path=path, name=name, series=series, columns=columns)


def read_many(
    paths: Iterable[str | Path],
    *,
    product: Product | None = None,
    test_type: TestType | None = None,
    allow_1hz: bool = False,
) -> list[SvkRecord]:
    """Read several files (e.g. the periods of a sine test); the first error stops."""
    return [read_csv(p, product=product, test_type=test_type, allow_1hz=allow_1hz) for p in paths]


__all__ = ["SvkCsvError", "SvkRecord", "read_csv", "read_many"]
