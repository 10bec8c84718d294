"""Write a :class:`~analytics.timeseries.Series` as an SvK prequalification CSV file.

Format (TR25 §6.2): ASCII, comma separated, '.' decimals, CRLF line ends, first column
``DateTime`` as ``YYYYMMDDThhmmss.nnn`` (wall time in the file name's time zone; the series'
``start`` is taken to be in that zone), values with ``decimals`` (>= 3, default 6)
decimals, MW with negative = absorbing. Columns: DateTime, then the series' signals in the
order InsAcPow, GridFreq, ApplFreqSig, CalcBaseline, Cap_<Service>, ReqAcPow, SOC (only
those present), then the series' ``extra`` signals and the ``extra`` argument, in order.
The Interval runs from the first time stamp floored to the minute to the last one rounded
up to the minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analytics.svkcsv.errors import WriteError
from analytics.svkcsv.names import SERVICE_TOKENS, SIGNAL_UNITS, SvkFileName
from analytics.timeseries import FloatArray, Series, SeriesError
from analytics.verdicts import TestType
from contract.enums import Product

SERIES_COLUMNS = (
    ("InsAcPow", "power_mw"),
    ("GridFreq", "grid_freq_hz"),
    ("ApplFreqSig", "applied_freq_hz"),
    ("CalcBaseline", "baseline_mw"),
    ("Cap_", "capacity_mw"),  # + service token
    ("ReqAcPow", "requested_mw"),
    ("SOC", "soc_pct"),
)


def column_name(prefix: str, product: Product) -> str:
    return prefix + SERVICE_TOKENS[product] if prefix == "Cap_" else prefix


def format_timestamps(stamps: npt.NDArray[np.datetime64]) -> list[str]:
    """``YYYYMMDDThhmmss.nnn`` for each datetime64 stamp."""
    iso = np.datetime_as_string(stamps.astype("datetime64[ms]"), unit="ms")
    return [s.replace("-", "").replace(":", "") for s in iso.tolist()]


def _floor_minute(stamp: np.datetime64) -> datetime:
    value: datetime = stamp.astype("datetime64[m]").astype(datetime)
    return value


def _columns(
    series: Series, product: Product, extra: Mapping[str, FloatArray] | None, where: Path
) -> tuple[list[str], list[FloatArray]]:
    headers: list[str] = ["DateTime"]
    columns: list[FloatArray] = []
    for prefix, attr in SERIES_COLUMNS:
        value = getattr(series, attr)
        if value is not None:
            headers.append(column_name(prefix, product))
            columns.append(value)
    for header, value in {**series.extra, **(extra or {})}.items():
        if header not in SIGNAL_UNITS or header in headers:
            raise WriteError(where, f"extra column {header!r} is unknown or duplicated")
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != series.t.shape:
            raise WriteError(where, f"extra column {header!r} has {arr.shape[0]} values")
        headers.append(header)
        columns.append(arr)
    return headers, columns


def write_csv(
    series: Series,
    directory: str | Path,
    *,
    resource: str,
    product: Product,
    test_type: TestType,
    area: str,
    timezone: str = "UTC",
    file_date: date | None = None,
    period_s: int | None = None,
    extra: Mapping[str, FloatArray] | None = None,
    decimals: int = 6,
    activation_hz: float | None = None,
) -> Path:
    """Write ``series`` into ``directory`` under its SvK file name; return the path.

    ``activation_hz``: an FFR activation's level, written into the test type
    (``Activation497``) so the file needs no ``--ffr-activation-hz`` when audited.
    """
    directory = Path(directory)
    if series.start is None:
        raise WriteError(directory, "the series has no absolute start time (Series.start)")
    if decimals < 3:
        raise WriteError(directory, f"SvK needs >= 3 decimals, got {decimals}")
    if (test_type is TestType.SINE) != (period_s is not None):
        raise WriteError(directory, "period_s is required for sine tests and only for them")
    if activation_hz is not None and (
        product is not Product.FFR or test_type is not TestType.ACTIVATION
    ):
        raise WriteError(directory, "activation_hz is for FFR activations only")
    if "_" in resource or "/" in resource or not resource.isascii() or not resource:
        raise WriteError(directory, f"resource {resource!r} must be non-empty ASCII without _ or /")
    try:
        dt = series.check_regular(rel_tol=0.0, abs_tol_s=0.0005)
    except SeriesError as exc:
        raise WriteError(directory, f"cannot state one sampling rate: {exc}") from exc
    ms = round(dt * 1000)
    if ms < 1:
        raise WriteError(directory, f"sampling interval {dt * 1000:.3f} ms is below 1 ms")
    offsets = np.round(series.t * 1000).astype(np.int64).astype("timedelta64[ms]")
    stamps = series.start.astype("datetime64[ms]") + offsets
    first, last = stamps[0], stamps[-1]
    end = _floor_minute(last)
    if last.astype("datetime64[m]") != last:
        end = _floor_minute(last + np.timedelta64(1, "m"))
    name = SvkFileName(
        resource=resource,
        product=product,
        test_type=test_type,
        area=area,
        timezone=timezone,
        interval_start=_floor_minute(first),
        interval_end=end,
        sampling_ms=ms,
        date=file_date or _floor_minute(first).date(),
        period_s=period_s,
        activation_hz=activation_hz,
    )
    headers, columns = _columns(series, product, extra, directory)
    suffix = name.header_suffix
    head = ",".join(h + suffix for h in headers)
    cells = [format_timestamps(stamps)]
    for col in columns:
        rounded = np.round(col, decimals) + 0.0  # no "-0.000"
        cells.append([f"{v:.{decimals}f}" for v in rounded.tolist()])
    rows = [",".join(row) for row in zip(*cells, strict=True)]
    path = directory / name.render()
    directory.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join([head, *rows]) + "\r\n").encode("ascii"))
    return path
