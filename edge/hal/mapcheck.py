"""Semantic checks of a register map beyond field types: references, overlaps, bounds, units."""

from __future__ import annotations

from itertools import pairwise

from edge.hal.errors import MapError
from edge.hal.registermap import (
    TIMING_FIELDS,
    UNIT_TO_CANONICAL,
    Point,
    RegisterMap,
    Source,
    Step,
    Variant,
    canonical_unit_ok,
    type_bounds,
)


def check_map(rmap: RegisterMap) -> None:
    _check_points(rmap)
    _check_overlaps(rmap)
    _check_references(rmap)
    _check_control(rmap)
    _check_faults(rmap)
    _check_timing(rmap)


def _check_timing(rmap: RegisterMap) -> None:
    """Links exist, timeouts are positive, and every link and variant can be reached."""
    links = rmap.timing.links
    for what, name in (("timing.default", rmap.timing.default), ("link", rmap.connection.link)):
        if name not in links:
            raise MapError(rmap.file, None, f"{what} {name!r} is not a link of timing.links")
    for name, link in links.items():
        if link.timeout_s.value <= 0:
            raise MapError(rmap.file, None, f"timing.links.{name}.timeout_s must be > 0")
        shadowed = [p for p in link.firmware_prefixes if rmap.link_for(p, None) != name]
        shadowed += [str(u) for u in link.unit_ids if rmap.link_for("", u) != name]
        if shadowed:
            raise MapError(rmap.file, None, f"link {name!r}: {shadowed} select another link")
    for vname, variant in rmap.variants.items():
        _check_variant_timing(rmap, vname, variant)


def _check_variant_timing(rmap: RegisterMap, vname: str, variant: Variant) -> None:

    written = sorted(set(variant.connection) & set(TIMING_FIELDS))
    if written:
        raise MapError(rmap.file, None, f"variant {vname!r}: {written} belong in its timing")
    for link_name, patch in variant.timing.items():
        if link_name not in rmap.timing.links:
            raise MapError(rmap.file, None, f"variant {vname!r} times unknown link {link_name!r}")
        unknown = sorted(set(patch) - set(TIMING_FIELDS))
        if unknown:
            raise MapError(rmap.file, None, f"variant {vname!r}: {unknown} are not timing fields")
    shadowed = [p for p in variant.firmware_prefixes if rmap.variant_for_firmware(p) != vname]
    if shadowed:
        raise MapError(rmap.file, None, f"variant {vname!r}: firmware {shadowed} selects another")


def _check_points(rmap: RegisterMap) -> None:

    for name, p in rmap.points.items():
        if p.type == "str" and p.length is None:
            raise MapError(rmap.file, name, "type str needs length (registers)")
        if p.type != "str" and p.length is not None:
            raise MapError(rmap.file, name, f"length is only for str, not {p.type}")
        if p.address + p.count - 1 > 0xFFFF:
            raise MapError(rmap.file, name, f"address {p.address} + {p.count} runs past 65535")
        if p.scale == 0:
            raise MapError(rmap.file, name, "scale 0")
        if p.min is not None and p.max is not None and p.min > p.max:
            raise MapError(rmap.file, name, f"min {p.min} > max {p.max}")
        if p.type != "str":
            lo, hi = type_bounds(p)
            for bound in (p.min, p.max):
                if bound is not None and not lo <= bound <= hi:
                    raise MapError(rmap.file, name, f"bound {bound} outside {p.type} range")
        if p.writable and p.table == "input":
            raise MapError(rmap.file, name, "input registers (FC04) are read-only")


def _check_overlaps(rmap: RegisterMap) -> None:
    spans = sorted(
        (p.table, p.address, p.address + p.count - 1, name) for name, p in rmap.points.items()
    )
    for (t1, _s1, e1, n1), (t2, s2, _e2, n2) in pairwise(spans):
        if t1 == t2 and s2 <= e1:
            raise MapError(rmap.file, n2, f"overlaps point {n1!r} in the {t1} table")


def _need(rmap: RegisterMap, name: str, used_by: str) -> Point:
    if name not in rmap.points:
        raise MapError(rmap.file, name, f"unknown point referenced by {used_by}")
    return rmap.points[name]


def _check_source(rmap: RegisterMap, src: Source, used_by: str) -> None:
    for term in src.terms:
        p = _need(rmap, term.point, used_by)
        if p.type == "str":
            raise MapError(rmap.file, term.point, f"{used_by} needs a numeric point")
    if src.times is not None:
        _need(rmap, src.times, used_by)


def _check_references(rmap: RegisterMap) -> None:

    ident = rmap.identification
    for field in ("model", "serial", "firmware", "rated_power"):
        name = getattr(ident, field)
        if name is not None:
            _need(rmap, name, f"identification.{field}")
    model_point = rmap.points[ident.model]
    if model_point.type != "str" and any(m.code is None for m in rmap.header.models):
        raise MapError(rmap.file, ident.model, "numeric model point: every model needs a code")
    for canonical, src in rmap.telemetry.items():
        _check_source(rmap, src, f"telemetry.{canonical.value}")
        if src.times is None:
            for term in src.terms:
                p = rmap.points[term.point]
                if p.unit not in UNIT_TO_CANONICAL:
                    raise MapError(rmap.file, term.point, f"unit {p.unit!r} has no conversion")
                if not canonical_unit_ok(p, canonical):
                    raise MapError(
                        rmap.file, term.point,
                        f"unit {p.unit!r} does not convert to {canonical.value}",
                    )  # fmt: skip
    for rule in rmap.mode:
        _need(rmap, rule.point, "mode")
    rb = rmap.control.readback
    _need(rmap, rb.direction.point, "control.readback.direction")
    _check_source(rmap, rb.charge_power, "control.readback.charge_power")
    _check_source(rmap, rb.discharge_power, "control.readback.discharge_power")


def _check_step(rmap: RegisterMap, step: Step, where: str) -> None:
    targets = step.targets()
    points = [_need(rmap, name, where) for name, _ in targets]
    for (name, value), p in zip(targets, points, strict=True):
        if not p.writable:
            raise MapError(rmap.file, name, f"{where} writes a point that is not rw")
        if p.type == "str":
            raise MapError(rmap.file, name, f"{where} cannot write strings")
        if isinstance(value, int | float) and not isinstance(value, bool):
            lo = p.min if p.min is not None else -float("inf")
            hi = p.max if p.max is not None else float("inf")
            if not lo <= value <= hi:
                raise MapError(rmap.file, name, f"{where} value {value} outside [{lo}, {hi}]")
    total = sum(p.count for p in points)
    if step.fc == 6 and total != 1:
        raise MapError(rmap.file, targets[0][0], f"{where}: FC06 writes exactly one register")
    for (n1, _), (n2, _), p1, p2 in zip(targets, targets[1:], points, points[1:], strict=False):
        if p2.address != p1.address + p1.count:
            raise MapError(rmap.file, n2, f"{where}: FC16 block is not contiguous after {n1!r}")


def _check_control(rmap: RegisterMap) -> None:
    c = rmap.control
    sp = _need(rmap, c.set_power.power_point, "control.set_power.power_point")
    if sp.max is None:
        raise MapError(rmap.file, c.set_power.power_point, "power point needs a max")
    seqs = {
        "set_power.charge": c.set_power.charge,
        "set_power.discharge": c.set_power.discharge,
        "set_power.idle": c.set_power.idle,
        "stop": c.stop,
        "safe_mode": c.safe_mode,
        "heartbeat": c.heartbeat,
    }
    for seq_name, steps in seqs.items():
        for i, step in enumerate(steps):
            _check_step(rmap, step, f"control.{seq_name}[{i}]")


def _check_faults(rmap: RegisterMap) -> None:
    codes: set[str] = set()
    for table in rmap.faults:
        p = _need(rmap, table.point, "faults")
        if p.type not in ("u16", "u32"):
            raise MapError(rmap.file, table.point, "fault words are u16 or u32")
        width = 16 * p.count
        for bit, fb in table.bits.items():
            if not 0 <= bit < width:
                raise MapError(rmap.file, table.point, f"bit {bit} outside a {width}-bit word")
            if fb.code in codes:
                raise MapError(rmap.file, table.point, f"duplicate fault code {fb.code!r}")
            codes.add(fb.code)
