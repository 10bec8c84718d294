"""`flowerhub edge ...` and `flowerhub sim ...`: thin handlers over edge.hal, doctor and sim."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flowerhub.cli import CliError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_edge(subparsers)
    _register_sim(subparsers)


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=502)
    p.add_argument("--unit-id", type=int, default=None, help="default: the map's candidates")
    p.add_argument(
        "--settle", type=float, default=None, help="override seconds to wait after connect"
    )
    p.add_argument("--timeout", type=float, default=None, help="override request timeout (s)")
    p.add_argument("--link", default=None, help="connection type of the map (e.g. lan, winet_s)")
    p.add_argument("--variant", default=None, help="firmware variant of the map (e.g. ekd_ampere)")


def _register_edge(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = subparsers.add_parser("edge", help="inverter HAL: read, write, maps, doctor")
    sub = edge.add_subparsers(dest="edge_cmd", metavar="COMMAND")
    sub.required = True

    read = sub.add_parser("read", help="identity, decoded telemetry and active faults")
    _connection_args(read)
    read.add_argument("--oem", default="auto", help="OEM map name or 'auto'")
    read.add_argument("--json", action="store_true")
    read.set_defaults(func=cmd_read)

    write = sub.add_parser("write", help="plan (and with no --dry-run, apply) a battery command")
    _connection_args(write)
    write.add_argument("--oem", required=True)
    what = write.add_mutually_exclusive_group(required=True)
    what.add_argument("--power-kw", type=float, help="+ discharges, - charges")
    what.add_argument("--stop", action="store_true")
    what.add_argument("--safe-mode", action="store_true")
    write.add_argument("--duration-min", type=int, default=None)
    write.add_argument(
        "--rated-kw", type=float, default=None, help="plan offline with this rated power"
    )
    write.add_argument("--dry-run", action="store_true", help="print the write plan, write nothing")
    write.set_defaults(func=cmd_write)

    maps = sub.add_parser("maps", help="register-map files")
    msub = maps.add_subparsers(dest="maps_cmd", metavar="COMMAND")
    msub.required = True
    validate = msub.add_parser("validate", help="load and check map files (default: all)")
    validate.add_argument("files", nargs="*", type=Path)
    validate.set_defaults(func=cmd_maps_validate)
    docs = msub.add_parser("docs", help="Markdown points table per OEM, from the maps")
    docs.add_argument("--oem", default=None)
    docs.set_defaults(func=cmd_maps_docs)
    schema = msub.add_parser("schema", help="JSON schema of the map format, for editors")
    schema.set_defaults(func=cmd_maps_schema)

    doctor = sub.add_parser("doctor", help="find, identify and diagnose devices")
    where = doctor.add_mutually_exclusive_group(required=True)
    where.add_argument("--host")
    where.add_argument("--scan", metavar="RANGE", help="e.g. 192.168.1.10-60 or 10.0.0.0/28")
    doctor.add_argument("--port", type=int, action="append", help="default: every map's ports")
    doctor.add_argument("--oem", default=None, help="only this OEM's map")
    doctor.add_argument("--unit-id", type=int, action="append")
    doctor.add_argument("--settle", type=float, default=None)
    doctor.add_argument("--timeout", type=float, default=2.0)
    doctor.add_argument("--link", default=None, help="connection type (default: identified)")
    doctor.add_argument("--variant", default=None, help="firmware variant (default: by firmware)")
    doctor.add_argument(
        "--measure-gap",
        action="store_true",
        help="measure the shortest safe request gap (errors vs gap; pushes the device once)",
    )
    doctor.add_argument(
        "--gaps",
        type=_gaps,
        default=None,
        metavar="MS,MS,...",
        help="request gaps to try, ms (default 200,100,50,30,20,10,5,0)",
    )
    doctor.add_argument(
        "--gap-requests", type=int, default=20, metavar="N", help="reads per gap (default 20)"
    )
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)

    # `flowerhub edge run` belongs to the edge bridge, which builds on this HAL.
    from flowerhub.cli.bridge import register_run

    register_run(sub)


def _register_sim(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser("sim", help="run simulated inverters until Ctrl-C")
    sim.add_argument("--oem", required=True)
    sim.add_argument("--model", default=None)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=5020)
    sim.add_argument("--count", type=int, default=1, help="N simulators on consecutive ports")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--soc", type=float, default=50.0)
    sim.add_argument("--firmware", default=None, help="firmware string (e.g. M_WiNet-S_V01)")
    sim.add_argument(
        "--min-spacing-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="refuse (exception 0x06) requests spaced closer than this, like a slow dongle",
    )
    sim.set_defaults(func=cmd_sim)


# ----------------------------------------------------------------------------- helpers
def _gaps(text: str) -> tuple[float, ...]:
    try:
        gaps = tuple(float(part) / 1000.0 for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of milliseconds: {text!r}") from None
    if not gaps or any(g < 0 for g in gaps):
        raise argparse.ArgumentTypeError(f"gaps must be >= 0 ms, got {text!r}")
    return gaps


def _maps(oem: str | None) -> list[Any]:
    from edge.hal.errors import MapError
    from edge.hal.maps import load_all

    try:
        maps = load_all()
    except MapError as exc:
        raise CliError(str(exc)) from None
    if oem in (None, "auto"):
        return list(maps.values())
    if oem not in maps:
        raise CliError(f"unknown OEM {oem!r}; maps: {', '.join(sorted(maps))}")
    return [maps[oem]]


def _open(args: argparse.Namespace, oem: str) -> Any:
    from edge.hal.discovery import open_device
    from edge.hal.errors import HalError

    async def go() -> Any:
        try:
            return await open_device(
                args.host,
                args.port,
                _maps(oem),
                unit_id=args.unit_id,
                settle_s=args.settle,
                timeout_s=args.timeout,
                link=args.link,
                variant=args.variant,
            )
        except HalError as exc:
            raise CliError(f"{exc} (try: flowerhub edge doctor --host {args.host})") from None

    return go


def _command(args: argparse.Namespace) -> Any:
    from edge.hal.points import Command

    if args.stop:
        return Command.stop()
    if args.safe_mode:
        return Command.safe_mode()
    return Command.set_power(args.power_kw, args.duration_min)


# ---------------------------------------------------------------------------- handlers
def cmd_read(args: argparse.Namespace) -> int:
    from edge.hal.errors import HalError

    async def run() -> dict[str, Any]:
        device = await _open(args, args.oem)()
        try:
            identity = device.identity
            telemetry = await device.read_telemetry()
            faults = await device.read_faults()
        except HalError as exc:
            raise CliError(str(exc)) from None
        finally:
            await device.transport.close()
        return {
            "identity": asdict(identity),
            "telemetry": asdict(telemetry),
            "faults": [asdict(f) for f in faults],
            "requests": device.transport.stats.requests,
        }

    data = asyncio.run(run())
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    ident = data["identity"]
    print(f"{ident['oem']} {ident['model']} serial {ident['serial']} firmware {ident['firmware']}")
    for key, value in data["telemetry"].items():
        print(f"  {key:18} {value}")
    print(f"  faults: {', '.join(f['code'] for f in data['faults']) or 'none'}")
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    from edge.hal.errors import HalError
    from edge.hal.planner import PlanContext, plan_command

    cmd = _command(args)
    if args.dry_run and args.rated_kw is not None:
        rmap = _maps(args.oem)[0]
        try:
            plan = plan_command(rmap, cmd, PlanContext(rated_power_kw=args.rated_kw))
        except HalError as exc:
            raise CliError(str(exc)) from None
        print(f"write plan for {rmap.oem}, {cmd.kind} {cmd.power_kw:g} kW (dry run, offline):")
        print("\n".join(plan.describe()))
        return 0

    async def run() -> int:
        device = await _open(args, args.oem)()
        try:
            await device.read_telemetry()
            plan = device.plan_command(cmd)
            print(f"write plan for {device.identity.model}, {cmd.kind} {cmd.power_kw:g} kW:")
            print("\n".join(plan.describe()))
            if args.dry_run:
                print("dry run: nothing written")
                return 0
            await device.apply(plan)
            print(f"written; readback {await device.read_setpoint_readback()} kW")
            return 0
        except HalError as exc:
            raise CliError(str(exc)) from None
        finally:
            await device.transport.close()

    return asyncio.run(run())


def cmd_maps_validate(args: argparse.Namespace) -> int:
    from edge.hal.errors import MapError
    from edge.hal.maps import load_map, map_files

    bad = 0
    for path in args.files or map_files():
        try:
            rmap = load_map(path)
        except MapError as exc:
            bad += 1
            print(f"FAIL {exc}")
            continue
        print(f"ok   {path}: {rmap.oem}, {len(rmap.points)} points, {len(rmap.faults)} fault words")
    return 1 if bad else 0


def cmd_maps_docs(args: argparse.Namespace) -> int:
    from edge.hal.mapdocs import all_markdown

    print(all_markdown(_maps(args.oem)), end="")
    return 0


def cmd_maps_schema(args: argparse.Namespace) -> int:
    from edge.hal.registermap import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doctor import DEFAULT_GAPS_S, diagnose
    from edge.hal.discovery import expand_hosts

    try:
        hosts = [args.host] if args.host else expand_hosts(args.scan)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    maps = _maps(args.oem)
    for name, known in (
        ("link", {k for m in maps for k in m.timing.links}),
        ("variant", {k for m in maps for k in m.variants}),
    ):
        value = getattr(args, name)
        if value is not None and value not in known:
            raise CliError(f"unknown {name} {value!r}; the maps have {sorted(known)}")
    if args.gap_requests < 1:
        raise CliError("--gap-requests must be >= 1")
    gaps = args.gaps if args.gaps is not None else (DEFAULT_GAPS_S if args.measure_gap else None)

    async def run() -> list[Any]:
        limit = asyncio.Semaphore(32)

        async def one(host: str) -> Any:
            async with limit:
                return await diagnose(
                    host,
                    maps,
                    ports=args.port,
                    unit_ids=args.unit_id,
                    settle_s=args.settle,
                    timeout_s=args.timeout,
                    link=args.link,
                    variant=args.variant,
                    gaps_s=gaps,
                    gap_requests=args.gap_requests,
                )

        return list(await asyncio.gather(*(one(h) for h in hosts)))

    reports = asyncio.run(run())
    if args.scan:
        reports = [r for r in reports if r.open_ports] or reports[:1]
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
    else:
        for r in reports:
            print("\n".join(r.lines()))
    return 0 if reports and all(r.ok for r in reports) else 1


def cmd_sim(args: argparse.Namespace) -> int:
    from edge.sim.server import SimInverter

    rmap = _maps(args.oem)[0]
    if args.count < 1:
        raise CliError("--count must be >= 1")

    async def run() -> None:
        try:
            sims = [
                SimInverter(
                    rmap,
                    model=args.model,
                    host=args.host,
                    port=args.port + i,
                    seed=args.seed + i,
                    soc_pct=args.soc,
                    version=args.firmware,
                    min_request_spacing_s=args.min_spacing_ms / 1000.0,
                )
                for i in range(args.count)
            ]
        except ValueError as exc:
            raise CliError(str(exc)) from None
        for sim in sims:
            await sim.start()
            where = f"{sim.host}:{sim.port} unit {sim.unit_id}"
            print(f"sim {rmap.oem} {sim.model.name} serial {sim.serial} on {where}")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            for sim in sims:
                await sim.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0
