"""The typed records come from the .avsc files: committed code equals what the schemas make,
and the generator refuses schema metadata it does not understand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from contract import codegen
from contract.errors import InvalidRecordError, SchemaDefinitionError
from contract.records import RECORDS, SiteTelemetry
from contract.registry import SCHEMA_ROOT, SchemaRegistry


def test_generated_files_are_fresh() -> None:
    assert codegen.main(["--check"]) == 0


def test_every_event_has_a_record_class() -> None:
    assert set(RECORDS) == set(SchemaRegistry.load().names())


def _tree_with(tmp_path: Path, event: str, edit: Any) -> Path:
    root = tmp_path / "contract"
    for path in SCHEMA_ROOT.glob("*/*.avsc"):
        if path.parent.name == "history":
            continue
        target = root / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    [path] = root.glob(f"*/{event}.avsc")
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema))
    return root


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


@pytest.mark.parametrize(
    ("event", "edit", "message"),
    [
        (
            "SiteTelemetry",
            lambda s: _field(s, "soc_pct").update({"flowerhub": {"minimum": 0}}),
            "unknown flowerhub keys",
        ),
        (
            "SiteTelemetry",
            lambda s: _field(s, "oem").update({"flowerhub": {"min": 0}}),
            "does not fit text",
        ),
        (
            "SiteCommand",
            lambda s: s.update({"flowerhub": {"requires": {"kind": {"STOP": ["nothing"]}}}}),
            "unknown fields",
        ),
        (
            "SiteFault",
            lambda s: _field(s, "site_id").update({"type": ["null", "string", "long"]}),
            "only unions of null and one type",
        ),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, event: str, edit: Any, message: str) -> None:
    with pytest.raises(SchemaDefinitionError, match=message):
        codegen.render(_tree_with(tmp_path, event, edit))


def test_a_check_in_the_schema_reaches_from_record(tmp_path: Path) -> None:
    """soc_pct carries {"min": 0, "max": 100} in the .avsc; the generated check uses it."""
    schema = json.loads((SCHEMA_ROOT / "site" / "SiteTelemetry.avsc").read_text())
    assert _field(schema, "soc_pct")["flowerhub"] == {"min": 0.0, "max": 100.0}
    good = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_time": 1,
        "ingest_time": None,
        "site_id": "s",
        "oem": "saj",
        "model": "H2",
        "battery_power_kw": 0.0,
        "soc_pct": 100.0,
        "grid_power_kw": 0.0,
        "pv_power_kw": 0.0,
        "load_kw": 0.0,
        "frequency_hz": None,
        "headroom_up_kw": 0.0,
        "headroom_down_kw": 0.0,
        "max_discharge_kw": 0.0,
        "max_charge_kw": 0.0,
        "capacity_kwh": None,
        "mode": "REMOTE",
        "setpoint_kw": None,
        "active_command_id": None,
    }
    record = SiteTelemetry.from_record(good)
    assert record.faulted is False  # the Avro default
    assert SiteTelemetry.from_plain(record.to_record()) == record
    with pytest.raises(InvalidRecordError, match=r"soc_pct: must be within 0\.\.100"):
        SiteTelemetry.from_record(good | {"soc_pct": 100.5})
