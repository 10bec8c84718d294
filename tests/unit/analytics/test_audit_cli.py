"""`flowerhub audit` end to end: exit codes, --json, report files, SvK CSV round trip, errors."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from analytics.audit.report import ProgressBar
from analytics.svkcsv import write_csv
from analytics.testing.scenario import Scenario, fcrd_ramp_log, mfrr_order_log
from analytics.testing.sequences import simulate_fcr_test
from analytics.verdicts import TestType
from contract.enums import Product
from flowerhub.cli import main


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return fcrd_ramp_log(tmp_path_factory.mktemp("log"))


@pytest.fixture(scope="module")
def exported(log: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv")
    code = main(
        [
            "audit",
            "export-svk",
            "--log",
            str(log.root),
            "--activation",
            log.activation_id,
            "--out",
            str(out),
            "--resource",
            "FlowerHub",
            "--area",
            "SE3",
        ]
    )
    assert code == 0
    (path,) = out.glob("*.csv")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["audit", "--no-progress", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_file_name_follows_svk(exported: Path) -> None:
    assert re.fullmatch(
        r"FlowerHub_FcrdUp_Ramp_SE3_UTC_\d{8}T\d{4}-\d{8}T\d{4}_1000ms_\d{8}\.csv", exported.name
    )
    header = exported.read_bytes().split(b"\r\n", 1)[0]
    assert header == b"DateTime,InsAcPow,GridFreq,CalcBaseline,Cap_FcrdUp"


def test_log_audit_json_matches_verdicts_json_and_exit_code(
    log: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ["--log", str(log.root), "--allow-1hz", "--json", "--out", str(tmp_path)], capsys
    )
    rows = json.loads(out)
    assert rows == json.loads((tmp_path / "verdicts.json").read_text())
    assert {r["status"] for r in rows} == {"PASS"}
    assert code == 0
    assert {r["activation"] for r in rows} == {log.activation_id}
    for key in ("rule_id", "rule_version", "measured", "threshold", "unit", "product"):
        assert all(key in r for r in rows)
    csv_lines = (tmp_path / "verdicts.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1


def test_report_html_embeds_the_plots_and_md_links_them(
    log: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--log", str(log.root), "--allow-1hz", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "FCRD_UP.REQ2.DP75" in out
    html = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 2  # one file to send around: the plots are in it
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    for src in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (tmp_path / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert log.wrong_polarity is not None
    assert log.overridden is not None
    assert log.wrong_polarity in md
    assert "WRONG_POLARITY" in md
    assert log.overridden in md
    assert "OVERRIDDEN" in md
    assert "Dispatch chain" in md
    assert "## Method" in md
    assert "last battery_power_kw sample before the bucket's end, held at most 2 s" in md


def test_ui_url_links_the_offenders_and_a_bad_one_exits_2(
    log: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--log", str(log.root), "--allow-1hz"]
    code, _, _ = run([*argv, "--ui-url", "http://127.0.0.1:8765/", "--out", str(tmp_path)], capsys)
    assert code == 0
    html = (tmp_path / "report.html").read_text()
    assert f'href="http://127.0.0.1:8765/#/site/{log.wrong_polarity}?from=' in html
    with pytest.raises(SystemExit) as exited:
        run([*argv, "--ui-url", "127.0.0.1:8765", "--out", str(tmp_path)], capsys)
    assert exited.value.code == 2
    assert "not the address of flowerhub ui" in capsys.readouterr().err


def test_hold_option_reaches_the_report_and_a_bad_hold_exits_2(
    log: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--log", str(log.root), "--allow-1hz", "--json"]
    code, out, _ = run([*argv, "--hold", "0", "--out", str(tmp_path / "h0")], capsys)
    assert code == 0
    assert {r["status"] for r in json.loads(out)} == {"PASS"}
    assert "held at most 0 s" in (tmp_path / "h0" / "report.md").read_text()
    code, _, err = run([*argv, "--hold", "-1", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2
    assert "sample hold must be a finite number >= 0 s, got -1.0" in err


def test_csv_audit_of_the_export_gives_the_same_verdicts_as_the_log(
    log: Scenario, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code_log, out_log, _ = run(
        ["--log", str(log.root), "--allow-1hz", "--json", "--out", str(tmp_path / "log")], capsys
    )
    code_csv, out_csv, _ = run(
        ["--svk-csv", str(exported), "--allow-1hz", "--json", "--out", str(tmp_path / "csv")],
        capsys,
    )
    from_log, from_csv = json.loads(out_log), json.loads(out_csv)
    assert code_log == code_csv == 0
    assert len(from_log) == len(from_csv) > 0
    for a, b in zip(from_log, from_csv, strict=True):
        assert a["activation"] == log.activation_id
        assert b["activation"] == exported.stem
        for key in ("product", "rule_id", "rule_version", "status", "threshold", "unit"):
            assert a[key] == b[key], (a["rule_id"], key)
        # same canonical series on both paths: identical, not merely close
        assert a["measured"] == b["measured"], a["rule_id"]


def test_rule_version_filter_on_csv(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--svk-csv", str(exported), "--allow-1hz", "--json", "--out", str(tmp_path)]
    code, out, _ = run([*argv, "--rule-version", "SVK-LEGACY"], capsys)
    assert code == 0
    assert {r["rule_version"] for r in json.loads(out)} == {"SVK-LEGACY", "FLOWERHUB-1"}


def _drop_column(name: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(name)
        return [",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in lines]

    return edit


def _set_cell(row: int, col: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        cells = lines[row].split(",")
        cells[col] = value
        return [*lines[:row], ",".join(cells), *lines[row + 1 :]]

    return edit


def _swap_rows(a: int, b: int) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        out = list(lines)
        out[a], out[b] = out[b], out[a]
        return out

    return edit


def _drop_row(row: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: [*lines[:row], *lines[row + 1 :]]


MALFORMED = [
    ("missing column", _drop_column("GridFreq"), [], ":1: column ApplFreqSig or GridFreq"),
    ("bad time stamp", _set_cell(5, 0, "2026-09-21 14:15:00"), [], ":6: column DateTime (#1)"),
    ("non-monotonic", _swap_rows(10, 11), [], ":12: column DateTime (#1)"),
    ("irregular sampling", _drop_row(20), [], ":21: column DateTime (#1)"),
    ("too coarse", lambda lines: lines, ["--no-allow"], ":3: column DateTime (#1)"),
    ("unknown unit", _set_cell(0, 1, "InsAcPow [kW]"), [], ":1: column InsAcPow [kW] (#2)"),
    ("not a number", _set_cell(7, 1, "abc"), [], ":8: column InsAcPow (#2)"),
]


@pytest.mark.parametrize("bad_case", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_csv_exits_2_naming_file_line_and_column(
    bad_case: tuple[str, Callable[[list[str]], list[str]], list[str], str],
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, edit, flags, where = bad_case
    lines = exported.read_text().splitlines()
    bad = tmp_path / exported.name
    bad.write_text("\r\n".join(edit(lines)) + "\r\n")
    allow = [] if "--no-allow" in flags else ["--allow-1hz"]
    code, out, err = run(["--svk-csv", str(bad), *allow, "--out", str(tmp_path / "o")], capsys)
    assert code == 2, case
    assert out == ""
    assert f"{bad}{where}" in err, err
    if case == "too coarse":
        assert "FCR-D test logging >= 10 Hz" in err


def test_bad_file_name_and_missing_inputs_exit_2(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = tmp_path / "measurements.csv"
    renamed.write_bytes(exported.read_bytes())
    code, _, err = run(["--svk-csv", str(renamed), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert str(renamed) in err
    code, _, err = run(["--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "--log DIR or --svk-csv" in err
    code, _, err = run(["--log", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "not a directory" in err


def test_export_of_unknown_activation_exits_2(
    log: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", "export-svk", "--log", str(log.root), "--activation", "nope"]
    code = main([*argv, "--out", str(tmp_path), "--resource", "X", "--area", "SE3"])
    assert code == 2
    assert "no activation 'nope'" in capsys.readouterr().err


def test_sine_csv_files_give_req8_req9_and_bode_nyquist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for i, period in enumerate((10, 40, 90)):
        series = simulate_fcr_test(
            Product.FCR_N, "sine", dp_ss_mw=0.1, tau_s=2.0, dt_s=0.2, period_s=period, n_periods=4
        )
        start = np.datetime64("2026-05-01T10:00:00") + np.timedelta64(i * 3600, "s")
        files.append(
            write_csv(
                dataclasses.replace(series, start=start),
                tmp_path / "csv",
                resource="FlowerHub",
                product=Product.FCR_N,
                test_type=TestType.SINE,
                area="SE3",
                period_s=period,
            )
        )
    out = tmp_path / "out"
    argv = ["--svk-csv", *map(str, files), "--json"]
    # simulated without measurement dynamics: as from an external signal generator
    code, text, _ = run([*argv, "--test-signal", "external", "--out", str(out)], capsys)
    rows = json.loads(text)
    assert code == 0
    set_rows = [r["rule_id"] for r in rows if r["activation"] == "sine-set-FCR_N"]
    assert set_rows == ["FCRN.REQ8.NYQUIST", "FCRN.REQ9.PERFORMANCE", "FCRN.REQ9.K_RED_DYN"]
    assert "external signal generator: F as measured" in (out / "report.md").read_text()
    # not stated: both readings, the stricter decides and the other is shown beside
    code, text, _ = run([*argv, "--out", str(tmp_path / "unknown")], capsys)
    unknown = [r for r in json.loads(text) if r["activation"] == "sine-set-FCR_N"]
    assert [r["rule_id"] for r in unknown] == set_rows
    assert all(r["other_reading"] for r in unknown)
    assert "test signal not stated" in (tmp_path / "unknown" / "report.md").read_text()
    linearity = [r for r in rows if r["rule_id"] == "FCRN.REQ10.LINEARITY"]
    assert len(linearity) == 3
    assert (out / "plots" / "bode-FCR_N.png").is_file()
    assert (out / "plots" / "nyquist-FCR_N.png").is_file()
    assert "plots/nyquist-FCR_N.png" in (out / "report.md").read_text()
    assert "Sine tests, FCR-N" in (out / "report.html").read_text()


def test_progress_bar_plain_text() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, use_tqdm=False)
    for k in range(3):
        bar(k, 2, f"step {k}")
    text = stream.getvalue()
    assert "[###############...............] 1/2 step 1" in text
    assert text.endswith("2/2 step 2\n")
    silent = io.StringIO()
    ProgressBar(silent, enabled=False)(1, 2, "x")
    assert silent.getvalue() == ""


def test_failing_rule_exits_1_and_time_window_in_iso(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = mfrr_order_log(tmp_path / "log")
    window = ["--from", "2026-09-21T14:13:00Z", "--to", "2026-09-21T15:00:00+00:00"]
    argv = ["--log", str(scenario.root), "--product", "mfrr", *window, "--json"]
    code, out, _ = run(
        [*argv, "--rule-version", "EAM-2025-03-04", "--out", str(tmp_path / "a")], capsys
    )
    fat = [r for r in json.loads(out) if r["rule_id"] == "MFRR.FAT"]
    assert [(r["status"], r["threshold"]) for r in fat] == [("FAIL", 300.0)]
    assert fat[0]["measured"] == pytest.approx(810.0)  # full 810 s after the MTU start
    assert fat[0]["other_reading"].endswith("FAIL")  # 12.5 min from the start fails too
    assert code == 1
    code, out, _ = run(
        [*argv, "--rule-version", "SVK-LEGACY", "--out", str(tmp_path / "b")], capsys
    )
    assert code == 0
    assert {r["rule_id"] for r in json.loads(out)} == {"MFRR.LEGACY.FAT", "MFRR.POLARITY"}
    code, _, err = run(
        ["--log", str(scenario.root), "--from", "2026-09-22", "--to", "2026-09-21", "--out", "x"],
        capsys,
    )
    assert code == 2
    assert "--to must be after --from" in err
