"""Audit inputs people type or files carry: product spellings and the FFR activation level."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from analytics.audit.run import AuditOptions, audit_csv
from analytics.svkcsv import FileNameError, RowFormatError, parse_product, read_csv, write_csv
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product
from flowerhub.cli import main


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("FcrdUp", Product.FCR_D_UP),
        ("fcr-d-up", Product.FCR_D_UP),
        ("FCR_D_UP", Product.FCR_D_UP),
        ("fcrd_up", Product.FCR_D_UP),
        ("FCR-D up", Product.FCR_D_UP),
        ("FcrdDo", Product.FCR_D_DOWN),
        ("fcr-d-down", Product.FCR_D_DOWN),
        ("FCR_D_DOWN", Product.FCR_D_DOWN),
        ("Fcrn", Product.FCR_N),
        ("fcr_n", Product.FCR_N),
        ("FCR-N", Product.FCR_N),
        ("ffr", Product.FFR),
        ("Afrr", Product.AFRR),
        ("mFRR", Product.MFRR),
    ],
)
def test_product_spellings(text: str, product: Product) -> None:
    assert parse_product(text) is product


def test_an_unknown_product_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"unknown product 'fcr'.*FCR_D_UP \(FcrdUp\)"):
        parse_product("fcr")
    with pytest.raises(SystemExit) as stop:
        main(["audit", "--product", "fcrd", "--svk-csv", "x.csv", "--out", "o"])
    assert stop.value.code == 2
    assert "unknown product 'fcrd'" in capsys.readouterr().err


def ffr_series(level: float, act: float = 0.5) -> Series:
    """A frequency dip through every option's level; full (100 % of C) ``act`` s after
    ``level`` is reached, held for 40 s."""
    t = np.round(np.arange(0.0, 120.0 + 0.05, 0.1), 9)
    f = np.interp(t, [0.0, 10.0, 11.0, 90.0, 91.0, 120.0], [50.0, 50.0, 49.0, 49.0, 50.0, 50.0])
    t_a = 10.0 + (50.0 - level)
    power = 2.0 * np.interp(t, [0.0, t_a, t_a + act, t_a + act + 40.0, 80.0, 120.0],
                            [0.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # fmt: skip
    return Series(
        t=t,
        power_mw=power,
        grid_freq_hz=f,
        capacity_mw=np.full_like(t, 2.0),
        start=np.datetime64("2025-03-01T12:00:00"),
    )


def _activation_time(rows: list[dict[str, object]]) -> dict[str, object]:
    (row,) = [r for r in rows if r["rule_id"] == "FFR.ACTIVATION_TIME"]
    return row


@pytest.mark.parametrize("level", [49.7, 49.6, 49.5])
def test_an_ffr_file_named_with_its_level_needs_no_option(tmp_path: Path, level: float) -> None:
    path = write_csv(
        ffr_series(level),
        tmp_path,
        resource="Fleet",
        product=Product.FFR,
        test_type=TestType.ACTIVATION,
        area="SE3",
        activation_hz=level,
    )
    assert f"_Ffr_Activation{round(level * 10)}_" in path.name
    assert read_csv(path).ffr_activation_hz == level
    result = audit_csv([path], AuditOptions())
    row = _activation_time(result.rows())
    assert row["threshold"] == {49.7: 1.3, 49.6: 1.0, 49.5: 0.7}[level]
    assert row["status"] == "PASS"


def test_an_ffr_level_column_needs_no_option(tmp_path: Path) -> None:
    s = ffr_series(49.6)
    s = dataclasses.replace(s, extra={"ActLevel_Ffr": np.full_like(s.t, 49.6)})
    path = write_csv(
        s, tmp_path, resource="Fleet", product=Product.FFR, test_type=TestType.ACTIVATION,
        area="SE3",
    )  # fmt: skip
    out = tmp_path / "out"
    assert (
        main(["audit", "--no-progress", "--svk-csv", str(path), "--json", "--out", str(out)]) == 0
    )
    rows = json.loads((out / "verdicts.json").read_text())
    assert _activation_time(rows)["threshold"] == 1.0


def test_a_contradicting_level_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ffr_series(49.6)
    named = write_csv(
        dataclasses.replace(s, extra={"ActLevel_Ffr": np.full_like(s.t, 49.7)}),
        tmp_path / "a",
        resource="Fleet",
        product=Product.FFR,
        test_type=TestType.ACTIVATION,
        area="SE3",
        activation_hz=49.6,
    )
    with pytest.raises(RowFormatError, match=r"column says 49\.7 Hz, the file name 49\.6 Hz"):
        read_csv(named)
    plain = write_csv(
        s, tmp_path / "b", resource="Fleet", product=Product.FFR,
        test_type=TestType.ACTIVATION, area="SE3", activation_hz=49.6,
    )  # fmt: skip
    argv = ["audit", "--no-progress", "--svk-csv", str(plain), "--out", str(tmp_path / "o")]
    assert main([*argv, "--ffr-activation-hz", "49.5"]) == 2
    assert "--ffr-activation-hz 49.5 contradicts the file's activation level 49.6 Hz" in (
        capsys.readouterr().err
    )


def test_a_level_that_is_no_option_or_not_ffr_is_a_file_name_error(tmp_path: Path) -> None:
    stem = "_SE3_UTC_20250301T1200-20250301T1202_100ms_20250301.csv"
    bad = tmp_path / f"Fleet_Ffr_Activation498{stem}"
    bad.write_bytes(b"DateTime,InsAcPow,GridFreq\r\n")
    with pytest.raises(FileNameError, match=r"49\.8 Hz is not an FFR activation level"):
        read_csv(bad)
    afrr = tmp_path / f"Fleet_Afrr_Activation497{stem}"
    afrr.write_bytes(b"DateTime,InsAcPow,ReqAcPow\r\n")
    with pytest.raises(
        FileNameError, match=r"activation level \(Activation497\) is for FFR files only"
    ):
        read_csv(afrr)
    s = ffr_series(49.7)
    moving = {**s.extra, "ActLevel_Ffr": np.where(s.t < 50.0, 49.7, 49.6)}
    path = write_csv(
        dataclasses.replace(s, extra=moving), tmp_path / "m", resource="Fleet",
        product=Product.FFR, test_type=TestType.ACTIVATION, area="SE3",
    )  # fmt: skip
    with pytest.raises(RowFormatError, match=r"level changes from 49\.7 to 49\.6 Hz"):
        read_csv(path)


@pytest.mark.parametrize("level", [49.7, 49.5])
def test_support_at_exactly_full_lasts_until_the_response_falls_below(
    tmp_path: Path, level: float
) -> None:
    path = write_csv(
        ffr_series(level),
        tmp_path,
        resource="Fleet",
        product=Product.FFR,
        test_type=TestType.ACTIVATION,
        area="SE3",
        activation_hz=level,
    )
    rows = audit_csv([path], AuditOptions()).rows()
    (support,) = [r for r in rows if r["rule_id"] == "FFR.SUPPORT_DURATION"]
    assert support["measured"] == pytest.approx(40.0, abs=1e-6)  # the plateau at 100 % of C
    assert support["status"] == "PASS"
