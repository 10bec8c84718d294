"""The audit reports the Activations view browses (flowerhub.ui.reports)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flowerhub.ui.reports import ReportIndex

ROWS = [
    {"activation": "a1", "product": "FCR_D_UP", "rule_id": "R1", "status": "PASS"},
    {"activation": "a1", "product": "FCR_D_UP", "rule_id": "R2", "status": "FAIL"},
    {"activation": "a2", "product": "MFRR", "rule_id": "R3", "status": "PASS"},
]


def write_report(path: Path, rows: object, html: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "verdicts.json").write_text(json.dumps(rows), encoding="utf-8")
    if html:
        (path / "report.html").write_text("<h1>report</h1>", encoding="utf-8")
        (path / "plots").mkdir(exist_ok=True)
        (path / "plots" / "a.png").write_bytes(b"\x89PNG")
    return path


def test_finds_reports_below_a_run_directory_and_summarises_them(tmp_path: Path) -> None:
    write_report(tmp_path / "run-1" / "report", ROWS)
    write_report(tmp_path / "run-2" / "report", ROWS[2:], html=False)
    (tmp_path / "run-3").mkdir()  # no report
    reports = {r.title: r for r in ReportIndex([tmp_path]).scan()}
    assert set(reports) == {f"{tmp_path.name}/run-1/report", f"{tmp_path.name}/run-2/report"}
    one = reports[f"{tmp_path.name}/run-1/report"].summary()
    assert (one["status"], one["verdicts"], one["failed"]) == ("FAIL", 3, 1)
    assert one["html"] == f"/reports/{one['id']}/report.html"
    assert [(a["activation"], a["status"], a["pass"], a["fail"]) for a in one["activations"]] == [
        ("a1", "FAIL", 1, 1),
        ("a2", "PASS", 1, 0),
    ]
    two = reports[f"{tmp_path.name}/run-2/report"].summary()
    assert (two["status"], two["html"]) == ("PASS", None)


def test_a_root_that_is_a_report(tmp_path: Path) -> None:
    root = write_report(tmp_path / "report", ROWS)
    (report,) = ReportIndex([root]).scan()
    assert report.path == root
    assert len(report.detail()["rows"]) == 3


def test_broken_verdicts_are_listed_with_their_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "verdicts.json").write_text("{not json", encoding="utf-8")
    wrong = write_report(tmp_path / "wrong", {"rows": 1}, html=False)
    reports = {r.path: r for r in ReportIndex([tmp_path]).scan()}
    assert reports[bad].status == "ERROR"
    assert "verdicts.json" in (reports[bad].error or "")
    assert reports[wrong].error == "verdicts.json: not a list of rows"


def test_files_only_inside_the_report(tmp_path: Path) -> None:
    root = write_report(tmp_path / "r", ROWS)
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    index = ReportIndex([tmp_path])
    rid = ReportIndex.id_of(root)
    assert index.file(rid, "report.html") == (root / "report.html").resolve()
    assert index.file(rid, "plots/a.png") is not None
    assert index.file(rid, "../secret.txt") is None
    assert index.file(rid, "/etc/passwd") is None
    assert index.file(rid, "plots") is None  # a directory
    assert index.file("0" * 16, "report.html") is None
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    assert index.file(rid, "link.txt") is None  # resolves outside


def test_a_report_written_later_and_a_changed_one_show_up(tmp_path: Path) -> None:
    index = ReportIndex([tmp_path])
    assert index.scan() == []
    path = write_report(tmp_path / "r", ROWS[:1])
    (first,) = index.scan()
    assert first.status == "PASS"
    write_report(path, ROWS)
    stat = (path / "verdicts.json").stat()
    os.utime(path / "verdicts.json", (stat.st_atime, stat.st_mtime + 5))
    (second,) = index.scan()
    assert second.status == "FAIL"


def test_missing_root_is_no_reports(tmp_path: Path) -> None:
    assert ReportIndex([tmp_path / "nope"]).scan() == []


def test_a_report_is_titled_as_the_audit_titled_it(tmp_path: Path) -> None:
    named = write_report(tmp_path / "run-1" / "report", ROWS)
    (named / "summary.json").write_text(
        json.dumps({"title": "FCR-D up ramp test t-1 · fleet f-1", "status": "FAIL"}),
        encoding="utf-8",
    )
    broken = write_report(tmp_path / "run-2" / "report", ROWS)
    (broken / "summary.json").write_text("[not json", encoding="utf-8")
    titles = {r.path.parent.name: r.title for r in ReportIndex([tmp_path]).scan()}
    assert titles == {
        "run-1": "FCR-D up ramp test t-1 · fleet f-1",
        "run-2": f"{tmp_path.name}/run-2/report",  # where it sits, as before
    }
