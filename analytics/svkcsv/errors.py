"""Typed errors of the SvK CSV reader and writer; each names the file, line and column."""

from __future__ import annotations

from pathlib import Path


class SvkCsvError(ValueError):
    """A file that does not follow SvK's CSV format (or cannot be judged as one).

    ``path`` is the file, ``line`` the 1-based line (1 = header; None when the problem is
    the file name or the file as a whole), ``column`` the header name (None when not tied to
    one column) and ``column_index`` its 1-based position.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        column_index: int | None = None,
    ) -> None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        if column is not None:
            where += f": column {column}" + (f" (#{column_index})" if column_index else "")
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
        self.column = column
        self.column_index = column_index
        self.reason = message


class FileNameError(SvkCsvError):
    """The file name does not follow ``[Resource]_[Service]_[TestType]_..._[Date].csv``."""


class EncodingError(SvkCsvError):
    """The file is not ASCII."""


class MissingColumnError(SvkCsvError):
    """A column the product/test type needs is absent."""


class UnknownColumnError(SvkCsvError):
    """A header that is not in SvK's signal list (nor our documented extensions)."""


class UnknownUnitError(SvkCsvError):
    """A header carries a unit other than the signal's SvK unit (e.g. ``InsAcPow [kW]``)."""


class RowFormatError(SvkCsvError):
    """A row with the wrong number of fields, or a value that is not a number."""


class TimestampError(SvkCsvError):
    """A time stamp that is not ``YYYYMMDDThhmmss.nnn``."""


class NonMonotonicError(SvkCsvError):
    """Time stamps that do not strictly increase."""


class IrregularSamplingError(SvkCsvError):
    """Intervals that differ from the file's sampling rate."""


class SamplingRateError(SvkCsvError):
    """A sampling rate coarser than the named requirement needs."""


class WriteError(SvkCsvError):
    """The writer cannot express a series in the format (e.g. no absolute start time)."""
