"""Bad maps fail at load with the file and the point named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.hal.errors import MapError
from edge.hal.registermap import MAPS_DIR, json_schema, load_map, parse_map

Mutation = Callable[[dict[str, Any]], None]


def _base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MAPS_DIR / "huawei.yaml").read_text())
    return data


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        node: Any = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


CASES: list[tuple[str, Mutation, str | None, str]] = [
    ("unknown type", _set(["points", "soc", "type"], "f32"), "soc", "type"),
    ("unknown unit", _set(["points", "soc", "unit"], "furlongs"), "soc", "unit"),
    ("address out of range", _set(["points", "soc", "address"], 70000), "soc", "address"),
    (
        "string runs past 65535",
        _set(["points", "model_name", "address"], 65530),
        "model_name",
        "65535",
    ),
    ("overlap", _set(["points", "soc", "address"], 37765), None, "overlaps"),
    (
        "sequence writes a read-only point",
        _set(["points", "forcible_cmd", "access"], "r"),
        "forcible_cmd",
        "not rw",
    ),
    (
        "str without length",
        _set(["points", "serial_number", "length"], None),
        "serial_number",
        "length",
    ),
    ("min above max", _set(["points", "forcible_cmd", "min"], 5), "forcible_cmd", "min"),
    (
        "telemetry references unknown point",
        _set(["telemetry", "soc_pct"], {"point": "nope"}),
        "nope",
        "unknown point",
    ),
    (
        "unit that does not convert",
        _set(["telemetry", "soc_pct"], {"point": "grid_frequency"}),
        "grid_frequency",
        "does not convert",
    ),
    (
        "fault bit outside word",
        _set(["faults", 0, "bits", 16], {"code": "x.y", "name": "n", "severity": "MAJOR"}),
        "alarm_1",
        "bit 16",
    ),
    ("extra key", _set(["points", "soc", "colour"], "red"), "soc", "Extra inputs"),
    ("FC06 on a u32", _set(["control", "stop", 1, "fc"], 6), "forcible_discharge_power", "FC06"),
]


@pytest.mark.parametrize(("label", "mutate", "point", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_map_is_refused_naming_file_and_point(
    label: str, mutate: Mutation, point: str | None, needle: str
) -> None:
    data = copy.deepcopy(_base())
    mutate(data)
    with pytest.raises(MapError) as info:
        parse_map(data, "bad.yaml")
    err = info.value
    assert err.file == "bad.yaml"
    if point is not None:
        assert err.point == point or point in str(err), label
    assert needle in str(err), label


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("points: [unclosed")
    with pytest.raises(MapError, match=r"broken\.yaml"):
        load_map(bad)


def test_variant_overlay_patches_connection_and_rejects_unknown_points() -> None:
    rmap = load_map(MAPS_DIR / "huawei.yaml")
    assert rmap.variant_for_firmware("V100R001C00SPC141") == "fw_spc140"
    assert rmap.with_variant("fw_spc140").connection.ports == [6607, 502]
    data = _base()
    data["variants"]["broken"] = {"description": "x", "points": {"ghost": {"scale": 2}}}
    with pytest.raises(MapError, match="ghost"):
        parse_map(data, "v.yaml").with_variant("broken")


def test_json_schema_is_generated_from_the_model() -> None:
    schema = json_schema()
    assert schema["title"] == "RegisterMap"
    assert "points" in schema["properties"]
    assert "Point" in schema["$defs"]
