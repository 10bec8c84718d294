"""Archives written before baselines still audit as they did: baseline 0 assumed and said so.

The archives of ``tests/golden/audit-v1`` were written by the archiver of SiteTelemetry v1
(no baseline, no armed capacities, in no column); their verdicts and offenders were
recorded with the audit before it judged delivered power (the README says how).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import pytest

from analytics.audit.report import write_report
from analytics.audit.run import AuditOptions, audit_log
from analytics.delivered import ARMED_FIELDS

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "audit-v1"


@pytest.mark.parametrize("name", ["fcrd", "mfrr"])
def test_a_v1_archive_gets_the_verdicts_it_got_before(name: str, tmp_path: Path) -> None:
    archive = tmp_path / name
    shutil.copytree(GOLDEN / name, archive)  # the audit never writes, but keep the golden pure
    con = duckdb.connect()
    columns = {
        str(r[0])
        for r in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
            [str(archive / "topic=site.telemetry" / "*" / "*.parquet")],
        ).fetchall()
    }
    con.close()
    assert "site_telemetry__battery_power_kw" in columns  # typed columns of v1 ...
    v2 = {f"site_telemetry__{f}" for f in ("baseline_kw", *ARMED_FIELDS.values())}
    assert not columns & v2  # ... and none of v2

    recorded = json.loads((GOLDEN / f"{name}-verdicts.json").read_text(encoding="utf-8"))
    result = audit_log(archive, AuditOptions(allow_1hz=True))
    rows = result.rows()
    assert [(r["activation"], r["rule_id"], r["status"]) for r in rows] == [
        (r["activation"], r["rule_id"], r["status"]) for r in recorded["verdicts"]
    ]
    for got, want in zip(rows, recorded["verdicts"], strict=True):
        for key in ("measured", "threshold", "threshold_high"):
            a, b = got.get(key), want.get(key)
            assert (a is None) == (b is None), (got["rule_id"], key)
            if isinstance(a, float | int) and isinstance(b, float | int):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (
                    got["rule_id"],
                    key,
                )
    offenders = sorted([o.site_id, o.kind] for r in result.results for o in r.offenders)
    assert offenders == recorded["offenders"]

    # the baseline the audit assumed is stated: per activation and in the Method
    for r in result.results:
        assert any("0 MW assumed" in note for note in r.notes), r.notes
        assert r.series is not None
        assert r.series.baseline_mw is not None
        assert not r.series.baseline_mw.any()
        assert not r.series.extra  # nothing else armed to take off
    assert any("written before baselines" in line for line in result.method)
    write_report(result, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "0 MW assumed" in text
