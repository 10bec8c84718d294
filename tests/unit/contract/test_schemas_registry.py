"""Registry loading, history versions, resolution of old writers, and bad schema trees."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from contract import (
    Codec,
    EventDecodeError,
    SchemaDefinitionError,
    SchemaRegistry,
    UnknownEventError,
)
from contract.evolution import check_backward_transitive, check_history, freeze
from contract.registry import min_encoded_size

V1: dict[str, Any] = {
    "type": "record",
    "name": "Ping",
    "namespace": "flowerhub",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "site_id", "type": "string"},
        {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
        {"name": "count", "type": "int"},
    ],
}


def v2() -> dict[str, Any]:
    """A compatible change: a new field with a default, int widened to long, a new symbol."""
    schema = copy.deepcopy(V1)
    schema["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    schema["fields"][4]["type"] = "long"
    schema["fields"][3]["type"]["symbols"].append("MID")
    return schema


def write_tree(root: Path, current: dict[str, Any], history: list[dict[str, Any]]) -> None:
    (root / "site").mkdir(parents=True, exist_ok=True)
    (root / "site" / f"{current['name']}.avsc").write_text(json.dumps(current, indent=2))
    for version, schema in enumerate(history, start=1):
        folder = root / "history" / current["name"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"v{version}.avsc").write_text(json.dumps(schema, indent=2))


def test_old_writer_bytes_resolve_to_the_current_schema(tmp_path: Path) -> None:
    write_tree(tmp_path, v2(), [V1, v2()])
    registry = SchemaRegistry.load(tmp_path)
    codec = Codec(registry)
    old = registry.history("Ping")[0]
    assert (old.version, registry.current("Ping").version) == (1, 2)
    record = {
        "event_id": uuid.uuid4(),
        "event_time": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "site_id": "s1",
        "level": "HIGH",
        "count": 7,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old.parsed, record)
    decoded = codec.decode(b"\xc3\x01" + old.fingerprint + body.getvalue())
    assert decoded.writer_version == 1
    assert decoded.record == {**record, "note": None}
    resolution = registry.resolution(old.fingerprint)
    assert resolution is not None
    assert resolution.reader is registry.current("Ping").parsed  # parsed once, cached
    assert check_backward_transitive(registry) == []
    assert check_history(tmp_path) == []


def test_a_changed_schema_without_history_is_flagged_then_frozen(tmp_path: Path) -> None:
    write_tree(tmp_path, v2(), [V1])
    registry = SchemaRegistry.load(tmp_path)
    assert registry.current("Ping").version == 2  # unreleased
    (problem,) = check_history(tmp_path)
    assert "differs from history/Ping/v1.avsc; freeze it as v2" in problem
    created = freeze("Ping", tmp_path)
    assert created == tmp_path / "history" / "Ping" / "v2.avsc"
    assert check_history(tmp_path) == []
    assert freeze("Ping", tmp_path) is None  # nothing new to freeze


def test_freeze_refuses_an_incompatible_change(tmp_path: Path) -> None:
    broken = copy.deepcopy(V1)
    broken["fields"].append({"name": "required_now", "type": "double"})
    write_tree(tmp_path, broken, [V1])
    with pytest.raises(ValueError, match=r"v1: Ping.required_now: added without a default"):
        freeze("Ping", tmp_path)
    assert check_backward_transitive(SchemaRegistry.load(tmp_path)) == [
        "Ping v1 -> current: Ping.required_now: added without a default"
    ]


def test_doc_only_change_shares_the_fingerprint(tmp_path: Path) -> None:
    documented = copy.deepcopy(V1)
    documented["doc"] = "now with words"
    write_tree(tmp_path, documented, [V1, documented])
    registry = SchemaRegistry.load(tmp_path)
    v1, v2_ = registry.history("Ping")
    assert v1.fingerprint == v2_.fingerprint
    resolution = registry.resolution(v1.fingerprint)
    assert resolution is not None
    assert resolution.writer.version == 2  # the newest version with that fingerprint wins
    assert resolution.reader is None


BAD_TREES: list[tuple[str, dict[str, Any], str]] = [
    ("no namespace", {**V1, "namespace": "other"}, "namespace 'flowerhub'"),
    ("not a record", {"type": "enum", "name": "Ping", "symbols": ["A"]}, "JSON record schema"),
    ("bad avro", {**V1, "fields": [{"name": "x", "type": "nope"}]}, "invalid Avro schema"),
    (
        "zero-size array items",
        {**V1, "fields": [{"name": "x", "type": {"type": "array", "items": "null"}}]},
        "zero bytes",
    ),
]


@pytest.mark.parametrize(("schema", "says"), [pytest.param(s, m, id=i) for i, s, m in BAD_TREES])
def test_bad_schema_files_are_refused(tmp_path: Path, schema: dict[str, Any], says: str) -> None:
    write_tree(tmp_path, schema, [])
    with pytest.raises(SchemaDefinitionError, match=says):
        SchemaRegistry.load(tmp_path)


def test_bad_history_layouts_are_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, V1, [V1])
    (tmp_path / "history" / "Ping" / "v3.avsc").write_text(json.dumps(V1))
    with pytest.raises(SchemaDefinitionError, match="without gaps"):
        SchemaRegistry.load(tmp_path)
    (tmp_path / "history" / "Ping" / "v3.avsc").rename(tmp_path / "history" / "Ping" / "old.avsc")
    with pytest.raises(SchemaDefinitionError, match=r"named v<N>\.avsc"):
        SchemaRegistry.load(tmp_path)


def test_unreadable_and_misnamed_files(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "Ping.avsc").write_text("{not json")
    with pytest.raises(SchemaDefinitionError, match="unreadable schema"):
        SchemaRegistry.load(tmp_path)
    (tmp_path / "site" / "Ping.avsc").write_text(json.dumps({**V1, "name": "Pong"}))
    with pytest.raises(SchemaDefinitionError, match="record name must equal the file name"):
        SchemaRegistry.load(tmp_path)
    with pytest.raises(SchemaDefinitionError, match=r"no <domain>/<Event>\.avsc"):
        SchemaRegistry.load(tmp_path / "history")


def test_unknown_event_lists_the_known_ones() -> None:
    registry = SchemaRegistry.load()
    with pytest.raises(UnknownEventError, match="SiteTelemetry"):
        registry.current("SiteTelemetryy")
    assert "SiteTelemetry" in registry
    assert len(registry) == len(registry.names())


@pytest.mark.parametrize(
    ("schema", "size"),
    [
        ("null", 0),
        ("boolean", 1),
        (["null", "int"], 1),
        ({"type": "record", "name": "E", "fields": []}, 0),
        ({"type": "fixed", "name": "F", "size": 4}, 4),
        ({"type": "record", "name": "R", "fields": [{"name": "a", "type": "null"}]}, 0),
        ({"type": "array", "items": "null"}, 1),
    ],
)
def test_min_encoded_size(schema: Any, size: int) -> None:
    assert min_encoded_size(schema) == size


def test_mutated_old_version_bytes_decode_or_raise_typed_errors(tmp_path: Path) -> None:
    """The resolution path (old writer -> current reader) is as total as the direct one."""
    write_tree(tmp_path, v2(), [V1, v2()])
    registry = SchemaRegistry.load(tmp_path)
    codec = Codec(registry)
    old = registry.history("Ping")[0]
    body = io.BytesIO()
    record = {
        "event_id": uuid.uuid4(),
        "event_time": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "site_id": "s1",
        "level": "LOW",
        "count": -3,
    }
    fastavro.schemaless_writer(body, old.parsed, record)
    valid = b"\xc3\x01" + old.fingerprint + body.getvalue()
    mutations = [valid[:cut] for cut in range(len(valid))]
    for bit in range(len(valid) * 8):
        flipped = bytearray(valid)
        flipped[bit // 8] ^= 1 << (bit % 8)
        mutations.append(bytes(flipped))
    decoded = 0
    for data in mutations:
        try:
            result = codec.decode(data)
        except EventDecodeError:
            continue
        codec.validate("Ping", result.record)
        decoded += 1
    assert 0 < decoded < len(mutations)
