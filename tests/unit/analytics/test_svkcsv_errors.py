"""Every malformed-file case yields its own error naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.svkcsv import (
    EncodingError,
    FileNameError,
    IrregularSamplingError,
    MissingColumnError,
    NonMonotonicError,
    RowFormatError,
    SamplingRateError,
    SvkCsvError,
    TimestampError,
    UnknownColumnError,
    UnknownUnitError,
    read_csv,
)
from contract.enums import Product

NAME = "Fleet_FcrdUp_Ramp_SE3_UTC_20250601T1000-20250601T1001_100ms_20250601.csv"
HEADER = "DateTime,InsAcPow,ApplFreqSig,Cap_FcrdUp"


def rows(n: int = 6, step_ms: int = 100) -> list[str]:
    return [
        f"20250601T1000{ms // 1000:02d}.{ms % 1000:03d},0.5{i},49.9,1.0"
        for i, ms in enumerate(range(0, n * step_ms, step_ms))
    ]


def write(tmp_path: Path, lines: list[str], name: str = NAME) -> Path:
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    return path


def test_valid_base_file_reads(tmp_path: Path) -> None:
    rec = read_csv(write(tmp_path, [HEADER, *rows()]))
    assert rec.series.n == 6


def test_lf_line_ends_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_text("\n".join([HEADER, *rows()]) + "\n", encoding="ascii")
    assert read_csv(path).series.n == 6


Case = tuple[str, list[str], str, type[SvkCsvError], int | None, str | None]
CASES: list[Case] = [
    ("bad name", [HEADER, *rows()], "fleet.csv", FileNameError, None, None),
    (
        "unknown service",
        [HEADER, *rows()],
        NAME.replace("FcrdUp", "Fcrx"),
        FileNameError,
        None,
        None,
    ),
    (
        "unknown test type",
        [HEADER, *rows()],
        NAME.replace("Ramp", "Wobble"),
        FileNameError,
        None,
        None,
    ),
    (
        "unknown column",
        ["DateTime,InsAcPow,ApplFreqSig,Voltage", *rows()],
        NAME,
        UnknownColumnError,
        1,
        "Voltage",
    ),
    (
        "duplicate column",
        ["DateTime,InsAcPow,ApplFreqSig,InsAcPow", *rows()],
        NAME,
        UnknownColumnError,
        1,
        "InsAcPow",
    ),
    (
        "unknown unit",
        ["DateTime,InsAcPow [kW],ApplFreqSig,Cap_FcrdUp", *rows()],
        NAME,
        UnknownUnitError,
        1,
        "InsAcPow [kW]",
    ),
    (
        "missing power",
        ["DateTime,GridFreq,ApplFreqSig,Cap_FcrdUp", *rows()],
        NAME,
        MissingColumnError,
        1,
        "InsAcPow",
    ),
    (
        "missing frequency",
        ["DateTime,InsAcPow,CalcBaseline,Cap_FcrdUp", *rows()],
        NAME,
        MissingColumnError,
        1,
        "ApplFreqSig or GridFreq",
    ),
    (
        "bad timestamp",
        [HEADER, *rows()[:2], "2025-06-01 10:00:00.200,0.5,49.9,1.0", *rows()[3:]],
        NAME,
        TimestampError,
        4,
        "DateTime",
    ),
    (
        "impossible date",
        [HEADER, *rows()[:4], "20251301T100000.400,0.5,49.9,1.0", *rows()[5:]],
        NAME,
        TimestampError,
        6,
        "DateTime",
    ),
    (
        "bad value",
        [HEADER, *rows()[:1], "20250601T100000.100,abc,49.9,1.0", *rows()[2:]],
        NAME,
        RowFormatError,
        3,
        "InsAcPow",
    ),
    (
        "not finite",
        [HEADER, *rows()[:3], "20250601T100000.300,0.5,nan,1.0", *rows()[4:]],
        NAME,
        RowFormatError,
        5,
        "ApplFreqSig",
    ),
    (
        "field count",
        [HEADER, *rows()[:2], "20250601T100000.200,0.5,49.9", *rows()[3:]],
        NAME,
        RowFormatError,
        4,
        None,
    ),
    (
        "non-monotonic",
        [HEADER, *rows()[:3], rows()[1], *rows()[4:]],
        NAME,
        NonMonotonicError,
        5,
        "DateTime",
    ),
    ("irregular", [HEADER, *rows()[:3], *rows()[4:]], NAME, IrregularSamplingError, 5, "DateTime"),
    (
        "rate vs file name",
        [HEADER, *rows(step_ms=200)],
        NAME,
        IrregularSamplingError,
        3,
        "DateTime",
    ),
    (
        "too coarse for FCR-D",
        [HEADER, *rows(step_ms=1000)],
        NAME.replace("100ms", "1000ms"),
        SamplingRateError,
        3,
        "DateTime",
    ),
    (
        "outside the interval",
        [HEADER, *rows()],
        NAME.replace("T1000-", "T1001-").replace("-20250601T1001", "-20250601T1002"),
        TimestampError,
        2,
        "DateTime",
    ),
    (
        "non-ASCII",
        [HEADER, *rows()[:2], "20250601T100000.200,0.5,49.9,1.0 \u00b5", *rows()[3:]],
        NAME,
        EncodingError,
        4,
        None,
    ),
    ("one row", [HEADER, *rows(1)], NAME, RowFormatError, None, None),
]


@pytest.mark.parametrize(
    ("label", "lines", "name", "error", "line", "column"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_file(
    tmp_path: Path,
    *,
    label: str,
    lines: list[str],
    name: str,
    error: type[SvkCsvError],
    line: int | None,
    column: str | None,
) -> None:
    path = write(tmp_path, lines, name)
    with pytest.raises(error) as caught:
        read_csv(path)
    err = caught.value
    assert type(err) is error, label
    assert err.path == path
    assert err.line == line
    assert err.column == column
    assert str(path) in str(err)


def test_sampling_error_names_the_requirement_and_1hz_may_be_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *rows(step_ms=1000)], NAME.replace("100ms", "1000ms"))
    with pytest.raises(
        SamplingRateError,
        match=r"FCR-D test logging >= 10 Hz \(TR25 §4.3; .*allow_1hz\) needs <= 100 ms",
    ):
        read_csv(path)
    assert read_csv(path, allow_1hz=True).series.n == 6


def test_operation_files_need_1hz(tmp_path: Path) -> None:
    name = "Fleet_Fcrn_Operation_SE3_UTC_20250601T1000-20250601T1001_2000ms_20250601.csv"
    path = write(
        tmp_path,
        ["DateTime,InsAcPow,GridFreq", *[r.rsplit(",", 1)[0] for r in rows(step_ms=2000)]],
        name,
    )
    with pytest.raises(SamplingRateError, match="operational logging >= 1 Hz"):
        read_csv(path)


def test_afrr_activation_needs_the_request_column(tmp_path: Path) -> None:
    name = "Fleet_Afrr_Activation_SE3_UTC_20250601T1000-20250601T1001_1000ms_20250601.csv"
    path = write(tmp_path, ["DateTime,InsAcPow,GridFreq,Cap_Afrr", *rows(step_ms=1000)], name)
    with pytest.raises(MissingColumnError) as caught:
        read_csv(path)
    assert caught.value.column == "ReqAcPow"
    # overriding the product from the file name changes what is required
    assert read_csv(path, product=Product.FCR_N).name.product is Product.FCR_N
