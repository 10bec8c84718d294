"""Bad maps fail at load with the file and the point named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.hal.errors import MapError
from edge.hal.maps import MAPS_DIR, load_map, parse_map
from edge.hal.registermap import json_schema

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


# ---------------------------------------------------------------- timing per connection type
def test_every_link_value_has_a_source_and_the_default_is_the_slowest() -> None:
    from edge.hal.maps import load_all
    from edge.hal.registermap import TIMING_FIELDS

    for rmap in load_all().values():
        default = rmap.timing.links[rmap.timing.default]
        assert rmap.connection.link == rmap.timing.default
        for name, link in rmap.timing.links.items():
            for field in TIMING_FIELDS:
                cited = getattr(link, field)
                assert cited.source.strip(), f"{rmap.oem}.{name}.{field}"
                assert getattr(rmap.with_link(name).connection, field) == cited.value
            # before identification the most conservative link: no slower settle or gap
            for field in ("connect_settle_s", "request_gap_s"):
                assert getattr(default, field).value >= getattr(link, field).value


def test_link_is_identified_by_firmware_or_unit_id() -> None:
    from edge.hal.maps import load_all

    maps = load_all()
    assert maps["sungrow"].link_for("M_WiNet-S_V01_V01_A", 1) == "winet_s"
    assert maps["sungrow"].link_for("SAPPHIRE-H_01011.95.12", 1) is None  # stays as is
    assert maps["huawei"].link_for("V100R001C10SPC200", 0) == "inverter"
    assert maps["huawei"].link_for("V100R001C10SPC200", 1) == "sdongle"
    assert maps["huawei"].link_for("V100R001C10SPC200", 100) == "sdongle"
    sungrow_lan = maps["sungrow"].with_link("lan").connection
    assert (sungrow_lan.request_gap_s, sungrow_lan.link) == (0.005, "lan")
    with pytest.raises(MapError, match=r"no link 'wifi'; links: \['lan', 'winet_s'\]"):
        maps["sungrow"].with_link("wifi")


def test_variant_timing_patches_its_link_and_survives_a_link_change() -> None:
    from edge.hal.maps import load_all

    saj = load_all()["saj"]
    ekd = saj.with_variant("ekd_ampere")
    assert (ekd.variant, ekd.connection.request_gap_s) == ("ekd_ampere", 0.2)
    assert "Ampere.IQ" in ekd.timing_sources()["request_gap_s"]
    assert ekd.with_link("aio3").connection.request_gap_s == 0.2
    assert saj.connection.request_gap_s == 0.1
    with pytest.raises(MapError, match=r"no variant 'ekd'; variants: \['ekd_ampere'\]"):
        saj.with_variant("ekd")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set(["connection", "request_gap_s"], 0.05), "come from timing.links"),
        (_set(["timing", "default"], "wifi"), "link 'wifi' .* is not a link of timing.links"),
        (_set(["timing", "links", "sdongle", "timeout_s", "value"], 0.0), "timeout_s"),
        (_set(["timing", "links", "inverter", "unit_ids"], [1]), r"\['1'\] select another link"),
        (
            _set(["timing", "links", "sdongle", "request_gap_s"], {"value": 0.05, "source": ""}),
            "request_gap_s",
        ),
        (
            _set(["variants", "fw_spc140", "connection"], {"request_gap_s": 0.1}),
            "belong in its timing",
        ),
        (
            _set(["variants", "fw_spc140", "timing"], {"wifi": {}}),
            "times unknown link 'wifi'",
        ),
    ],
)
def test_bad_timing_is_refused_at_load(mutate: Mutation, match: str) -> None:
    data = copy.deepcopy(_base())
    mutate(data)
    with pytest.raises(MapError, match=match):
        parse_map(data, "t.yaml")


def test_a_variant_shadowed_by_another_prefix_is_refused() -> None:
    data = _base()
    data["variants"]["spc14x"] = {"description": "x", "firmware_prefixes": ["V100R001C00SPC141"]}
    with pytest.raises(MapError, match="selects another"):
        parse_map(data, "v.yaml")
