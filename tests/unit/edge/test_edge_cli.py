"""The `edge` and `sim` CLI groups, against simulators on loopback (a thread runs the sim loop)."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.hal.registermap import MAPS_DIR, load_map
from edge.sim.server import SimInverter
from flowerhub.cli import CliError
from flowerhub.cli import edge as cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flowerhub")
    cli.register(parser.add_subparsers(dest="group"))
    return parser.parse_args(list(argv))


def run(*argv: str) -> int:
    args = parse(*argv)
    code: int = args.func(args)
    return code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThreadedSim:
    """A simulator served from its own event loop in a thread (CLI handlers call asyncio.run)."""

    def __init__(self, oem: str, **kwargs: object) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.sim = SimInverter(load_map(MAPS_DIR / f"{oem}.yaml"), port=self.port, **kwargs)  # type: ignore[arg-type]  # test kwargs
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSim:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sungrow() -> Iterator[ThreadedSim]:
    with ThreadedSim("sungrow") as sim:
        yield sim


def test_maps_validate_all_and_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("edge", "maps", "validate") == 0
    assert capsys.readouterr().out.count("ok ") == 3
    bad = tmp_path / "bad.yaml"
    text = (MAPS_DIR / "saj.yaml").read_text().replace("address: 0x406F", "address: 0x4069")
    bad.write_text(text)
    assert run("edge", "maps", "validate", str(bad)) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "bad.yaml" in out
    assert "overlaps" in out


def test_maps_docs_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("edge", "maps", "docs") == 0
    docs = capsys.readouterr().out
    for needle in ("(`huawei`)", "(`sungrow`)", "(`saj`)", "| soc | 37760 (0x9380) | holding |"):
        assert needle in docs
    assert "| ems_mode | 13049 (0x32F9) | holding |" in docs
    assert run("edge", "maps", "schema") == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "RegisterMap"


def test_write_dry_run_offline_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            "edge",
            "write",
            "--host",
            "-",
            "--oem",
            "saj",
            "--power-kw",
            "-3",
            "--rated-kw",
            "10",
            "--dry-run",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "FC06 addr 13881 (0x3639) <- [0x012c]" in out
    with pytest.raises(CliError, match="above max"):
        run(
            "edge",
            "write",
            "--host",
            "-",
            "--oem",
            "sungrow",
            "--power-kw",
            "90",
            "--rated-kw",
            "10",
            "--dry-run",
        )
    with pytest.raises(CliError, match="unknown OEM"):
        run(
            "edge",
            "write",
            "--host",
            "-",
            "--oem",
            "nope",
            "--stop",
            "--rated-kw",
            "1",
            "--dry-run",
        )


def test_read_auto_detects_the_oem(
    sungrow: ThreadedSim, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "edge",
        "read",
        "--host",
        "127.0.0.1",
        "--port",
        str(sungrow.port),
        "--settle",
        "0",
        "--timeout",
        "1",
        "--json",
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["identity"]["oem"] == "sungrow"
    assert data["identity"]["serial"] == sungrow.sim.serial
    assert data["telemetry"]["soc_pct"] == pytest.approx(50.0, abs=0.2)
    assert data["faults"] == []


def test_write_applies_and_reads_back(
    sungrow: ThreadedSim, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(sungrow.port)
    base = (
        "edge",
        "write",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--oem",
        "sungrow",
        "--settle",
        "0",
    )
    assert run(*base, "--power-kw", "-2", "--dry-run") == 0
    assert sungrow.sim.write_log == []
    assert run(*base, "--power-kw", "-2") == 0
    assert "readback -2.0 kW" in capsys.readouterr().out
    assert [w.address for w in sungrow.sim.write_log] == [13079, 13049]


def test_doctor_finds_the_working_unit_id_and_reads_every_point(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ThreadedSim("huawei", unit_id=100) as site:
        code = run(
            "edge",
            "doctor",
            "--host",
            "127.0.0.1",
            "--port",
            str(site.port),
            "--settle",
            "0",
            "--timeout",
            "1",
            "--json",
        )
    assert code == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert (report["oem"], report["unit_id"]) == ("huawei", 100)
    assert report["rtt_ms"] > 0
    assert len(report["points"]) == 33
    assert all(p["error"] is None for p in report["points"])
    unit_1 = next(a for a in report["attempts"] if "huawei port" in a and "unit 1:" in a)
    assert "0x0b" in unit_1
    assert "unit id" in unit_1


def test_doctor_explains_an_unreachable_host(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "edge", "doctor", "--host", "127.0.0.1", "--port", str(free_port()), "--timeout", "0.5"
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out
    assert "Modbus TCP is enabled" in out


def test_sim_group_refuses_unknown_models() -> None:
    with pytest.raises(CliError, match="no model"):
        run("sim", "--oem", "saj", "--model", "XYZ", "--port", str(free_port()))


def test_doctor_scan_finds_the_device_in_a_range(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedSim("saj") as site:
        code = run(
            "edge", "doctor", "--scan", "127.0.0.1-3", "--port", str(site.port),
            "--oem", "saj", "--settle", "0", "--timeout", "0.5", "--json",
        )  # fmt: skip
    reports = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["host"], r["oem"]) for r in reports] == [("127.0.0.1", "saj")]
