"""`flowerhub topics ...` and `flowerhub events ...` through the real CLI root."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from contract.jsonform import from_jsonable, to_jsonable
from contract.registry import SchemaRegistry
from flowerhub.cli import main

REGISTRY = SchemaRegistry.load()
DEAD_LETTER = {
    "event_id": "7f8557a1-7c03-4f74-bdfc-5c280aa9a580",
    "event_time": "2026-11-24T01:00:00+00:00",
    "source_topic": "site.telemetry",
    "partition": 3,
    "offset": 42,
    "key": "73697465",
    "original": "c301ff",
    "error_type": "BadMagicError",
    "reason": "first bytes c301ff...",
    "consumer": "aggregator",
}


def test_topics_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "list", "--prefix", "replay-1."]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["topic", "key", "value", "event", "partitions", "policy"]
    assert len(out) == 13
    assert any(line.split()[:2] == ["replay-1.site.faults", "site_id"] for line in out)
    assert "compact" in next(line for line in out if "site.device-status" in line)


def test_events_encode_then_decode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["events", "encode", "DeadLetter", json.dumps(DEAD_LETTER)]) == 0
    hex_bytes = capsys.readouterr().out.strip()
    assert hex_bytes.startswith("c301" + REGISTRY.current("DeadLetter").fingerprint_hex)
    assert main(["events", "decode", hex_bytes]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "event": "DeadLetter",
        "writer_version": 1,
        "record": {**DEAD_LETTER, "ingest_time": None},
    }
    raw = tmp_path / "message.bin"
    raw.write_bytes(bytes.fromhex(hex_bytes))
    assert main(["events", "decode", "--file", str(raw)]) == 0
    assert json.loads(capsys.readouterr().out) == shown


def test_events_encode_fills_id_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    minimal = {k: v for k, v in DEAD_LETTER.items() if k not in ("event_id", "event_time")}
    assert main(["events", "encode", "DeadLetter", json.dumps(minimal)]) == 0
    assert main(["events", "decode", capsys.readouterr().out.strip()]) == 0
    record = json.loads(capsys.readouterr().out)["record"]
    assert uuid.UUID(record["event_id"]).version == 4
    assert dt.datetime.fromisoformat(record["event_time"]).tzinfo is not None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["events", "decode", "zz"], "not hex"),
        (["events", "decode", "c301"], "TruncatedEventError"),
        (["events", "decode", "ffff"], "BadMagicError"),
        (["events", "decode", "--file", "/nonexistent/x.bin"], "/nonexistent/x.bin"),
        (["events", "encode", "Nope", "{}"], "UnknownEventError"),
        (["events", "encode", "DeadLetter", "{"], "JSON"),
        (["events", "encode", "DeadLetter", "[]"], "expected a JSON object"),
        (["events", "encode", "DeadLetter", '{"partition": 1}'], "source_topic: missing"),
        (["events", "encode", "DeadLetter", '{"original": "xyz"}'], "hex"),
        (["events", "encode", "DeadLetter", '{"event_time": "yesterday"}'], "ISO-8601"),
        (["events", "freeze", "Nope"], "no current schema"),
    ],
)
def test_errors_exit_2_with_a_message(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_events_list_check_and_freeze_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "list"]) == 0
    listing = capsys.readouterr().out
    assert REGISTRY.current("SiteTelemetry").fingerprint_hex in listing
    assert main(["events", "check"]) == 0
    assert "BACKWARD_TRANSITIVE" in capsys.readouterr().out
    assert main(["events", "freeze", "SiteTelemetry"]) == 0  # already frozen: no file written
    assert capsys.readouterr().out.strip() == "SiteTelemetry: unchanged"


def test_topics_create_without_a_broker_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowerhub.broker.launcher import free_ports

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("FLOWERHUB_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("FLOWERHUB_KAFKA_HOME", str(tmp_path))  # no local broker state there
    (port,) = free_ports(1)  # nothing listens there
    assert main(["topics", "create", "--bootstrap", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot connect to Kafka at PLAINTEXT://127.0.0.1:{port}" in err
    assert f"nothing listens on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_jsonform_round_trip_of_nested_values() -> None:
    raw = REGISTRY.current("SiteCommand").raw
    text = {
        "site_id": "s",
        "command_id": "c",
        "kind": "ARM_RESERVE",
        "reserve": {
            "product": "FCR_N",
            "capacity_kw": 5.0,
            "f_start_hz": 50.0,
            "f_full_hz": 49.9,
        },
        "valid_until": "2026-11-24T01:05:00+00:00",
    }
    record = from_jsonable(raw, text)
    assert record["valid_until"] == dt.datetime(2026, 11, 24, 1, 5, tzinfo=dt.UTC)
    assert to_jsonable(record) == text
