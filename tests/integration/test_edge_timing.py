"""HAL timing that follows what identification finds (issue 16), on simulators over loopback.

The simulator counts the spacing of the requests it receives (reply to next request) and
can refuse requests spaced closer than N ms (exception 0x06), like a slow dongle.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from edge.doctor import diagnose
from edge.hal.device import Device
from edge.hal.maps import load_all
from edge.hal.registermap import RegisterMap
from edge.hal.transport import Backoff, ModbusTransport
from edge.sim.server import SimInverter
from flowerhub.cli import main

MAPS = load_all()
T = TypeVar("T")
SLACK_S = 0.002  # the simulator's reply leaves a little before the client sees it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(factory(), 60))


def no_settle(rmap: RegisterMap) -> ModbusTransport:
    """A transport with the map's gaps and no settle after connect (kept: set by the caller)."""
    conn = rmap.connection.model_copy(update={"connect_settle_s": 0.0})
    return ModbusTransport("127.0.0.1", 0, 1, conn, backoff=Backoff(0.05, 0.2))


async def started(rmap: RegisterMap, **kwargs: object) -> tuple[SimInverter, ModbusTransport]:
    sim = SimInverter(rmap, port=free_port(), **kwargs)  # type: ignore[arg-type]  # test kwargs
    await sim.start()
    transport = no_settle(rmap)
    transport.port, transport.unit_id = sim.port, sim.unit_id
    return sim, transport


def test_a_configured_variant_paces_from_the_request_after_identify() -> None:
    """SAJ's EKD variant (no firmware string: site config) doubles the gap to 0.2 s."""

    async def body() -> None:
        rmap = MAPS["saj"]
        sim, transport = await started(rmap)
        try:
            device = Device(rmap, transport, variant="ekd_ampere")
            ident = await device.identify()
            during = list(sim.pacing.spacings)
            after_identify = sim.pacing.requests
            for _ in range(2):
                await device.read_telemetry()
            after = sim.pacing.since(after_identify)
        finally:
            await transport.close()
            await sim.stop()
        assert (ident.variant, ident.link) == ("ekd_ampere", "aio3")
        assert transport.connection.request_gap_s == 0.2
        assert during  # identification ran at the base map's gap (0.1 s)
        assert min(during) >= 0.1 - SLACK_S
        assert statistics.median(during) < 0.15
        assert len(after) >= 8
        assert min(after) >= 0.2 - SLACK_S  # the variant's, from the first request after it

    run(body)


def test_an_identified_dongle_paces_as_the_dongle() -> None:
    """Sungrow through WiNet-S (its firmware string): 30 ms gaps after identify; the LAN
    port named in the site config: 5 ms."""

    async def body() -> tuple[float, float, str | None, str | None]:
        rmap = MAPS["sungrow"]
        sim, transport = await started(rmap, version="M_WiNet-S_V01_V01_A")
        lan_sim, lan_transport = await started(rmap)
        try:
            winet = Device(rmap, transport)
            lan = Device(rmap, lan_transport, link="lan")
            ident, lan_ident = await winet.identify(), await lan.identify()
            marks = (sim.pacing.requests, lan_sim.pacing.requests)
            await winet.read_telemetry()
            await lan.read_telemetry()
            return (
                min(sim.pacing.since(marks[0])),
                lan_transport.connection.request_gap_s,
                ident.link,
                lan_ident.link,
            )
        finally:
            for t in (transport, lan_transport):
                await t.close()
            for s in (sim, lan_sim):
                await s.stop()

    winet_gap, lan_gap, winet_link, lan_link = run(body)
    assert (winet_link, lan_link) == ("winet_s", "lan")
    assert winet_gap >= 0.03 - SLACK_S
    assert lan_gap == 0.005


CASES = [
    (oem, "variant", name, prefix)
    for oem, rmap in sorted(MAPS.items())
    for name, variant in rmap.variants.items()
    for prefix in [None, *variant.firmware_prefixes[:1]]
] + [
    (oem, "link", name, prefix)
    for oem, rmap in sorted(MAPS.items())
    for name, link in rmap.timing.links.items()
    for prefix in [None, *link.firmware_prefixes[:1], *[f"unit:{u}" for u in link.unit_ids[:1]]]
]


@pytest.mark.parametrize(
    ("oem", "kind", "name", "found_by"),
    CASES,
    ids=[f"{o}-{k}-{n}-{p or 'config'}" for o, k, n, p in CASES],
)
def test_every_declared_variant_and_link_can_be_reached(
    oem: str, kind: str, name: str, found_by: str | None
) -> None:
    """By the site config (found_by None), by firmware string or by unit id."""

    async def body() -> tuple[str | None, str | None, float]:
        rmap = MAPS[oem]
        sim_args: dict[str, object] = {}
        if found_by is not None and found_by.startswith("unit:"):
            sim_args["unit_id"] = int(found_by.split(":")[1])
        elif found_by is not None:
            sim_args["version"] = found_by + "X"
        sim, transport = await started(rmap, **sim_args)
        try:
            by_config = name if found_by is None else None
            device = Device(
                rmap,
                transport,
                variant=by_config if kind == "variant" else None,
                link=by_config if kind == "link" else None,
            )
            ident = await device.identify()
            return ident.variant, ident.link, transport.connection.request_gap_s
        finally:
            await transport.close()
            await sim.stop()

    variant, link, gap = run(body)
    if kind == "variant":
        assert variant == name
        want = MAPS[oem].with_variant(name)
        assert gap == want.with_link(link or want.connection.link).connection.request_gap_s
    else:
        assert link == name
        assert gap == MAPS[oem].timing.links[name].request_gap_s.value


def test_doctor_measures_the_shortest_safe_gap(capsys: pytest.CaptureFixture[str]) -> None:
    """A SAJ simulator refusing requests closer than 40 ms: the doctor's sweep finds 40 ms."""

    async def body() -> None:
        sim = SimInverter(MAPS["saj"], port=free_port(), min_request_spacing_s=0.04)
        await sim.start()
        try:
            report = await diagnose(
                "127.0.0.1",
                [MAPS["saj"]],
                ports=[sim.port],
                unit_ids=[1],
                settle_s=0.0,
                gaps_s=(0.08, 0.06, 0.04, 0.02, 0.01),
                gap_requests=10,
            )
            assert report.gap_sweep is not None
            steps = [(s.gap_s, s.errors) for s in report.gap_sweep.steps]
            assert steps[:3] == [(0.08, 0), (0.06, 0), (0.04, 0)]
            assert steps[3][0] == 0.02
            assert steps[3][1] > 0  # refused: device busy
            assert len(steps) == 4  # stops after the first gap with errors
            assert report.gap_sweep.shortest_safe_s == 0.04
            assert report.gap_sweep.steps[3].kinds.get("exception", 0) > 0
            text = "\n".join(report.lines())
            assert "SHORTEST SAFE GAP observed: 40 ms (map, link aio3: 100 ms, at or above it)" in (
                text
            )
            assert "request_gap_s = 0.1 s  (FlowerHub conservative choice" in text
            assert "connect_settle_s = 0 s  (set here)" in text
            # the CLI: the same sweep, printed
            code = await asyncio.to_thread(
                main,
                [
                    "edge", "doctor", "--host", "127.0.0.1", "--port", str(sim.port),
                    "--oem", "saj", "--unit-id", "1", "--settle", "0", "--measure-gap",
                    "--gaps", "60,40,20", "--gap-requests", "8",
                ],
            )  # fmt: skip
            assert code == 0
        finally:
            await sim.stop()

    run(body)
    out = capsys.readouterr().out
    assert "SHORTEST SAFE GAP observed: 40 ms" in out
    assert "link aio3; timing in force:" in out
