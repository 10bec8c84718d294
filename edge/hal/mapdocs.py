"""Markdown documentation generated from the register maps (`flowerhub edge maps docs`)."""

from __future__ import annotations

from edge.hal.registermap import RegisterMap, Step


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _step(step: Step) -> str:
    targets = ", ".join(f"{n} <- {v}" for n, v in step.targets())
    delay = f", wait {step.delay_after_s:g} s" if step.delay_after_s else ""
    return f"FC{step.fc:02d} {targets}{delay}"


def map_markdown(rmap: RegisterMap) -> str:
    h, c = rmap.header, rmap.connection
    out = [f"## {h.title} (`{h.oem}`)", ""]
    out.append("Models: " + ", ".join(m.name for m in h.models) + ".")
    out += ["", "Sources: " + "; ".join(h.manuals) + ".", ""]
    if h.decisions:
        out += ["Decisions where sources disagree:", ""]
        out += [f"- {d}" for d in h.decisions]
        out.append("")
    out += [
        "| Connection | Value |",
        "|---|---|",
        f"| ports | {', '.join(map(str, c.ports))} |",
        f"| unit ids | {', '.join(map(str, c.unit_ids))} |",
        f"| max registers per read (gap) | {c.max_registers_per_read} ({c.max_read_gap}) |",
        f"| default word order | {h.word_order} |",
        f"| link before identification | {rmap.timing.default} |",
        "",
        "| Link | Timing | Value | Source |",
        "|---|---|---|---|",
    ]
    for name, link in rmap.timing.links.items():
        for field, label in (
            ("connect_settle_s", "settle after connect"),
            ("request_gap_s", "gap between requests"),
            ("write_gap_s", "gap between writes"),
            ("readback_settle_s", "settle after a write, before a holding read"),
            ("timeout_s", "timeout"),
        ):
            cited = getattr(link, field)
            out.append(f"| {name} | {label} | {cited.value:g} s | {cited.source} |")
    out += [
        "",
        "| Point | Wire address | Table | Type | Scale | Unit | Access | Min | Max | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in sorted(rmap.points.items(), key=lambda kv: (kv[1].table, kv[1].address)):
        type_ = f"{p.type}x{p.count}" if p.type == "str" else p.type
        if p.count == 2 and p.word_order:
            type_ += f" ({p.word_order})"
        note = p.doc
        if p.values:
            note = (note + " " if note else "") + ", ".join(f"{k}={v}" for k, v in p.values.items())
        out.append(
            f"| {name} | {p.address} (0x{p.address:04X}) | {p.table} | {type_} | {p.scale:g} | "
            f"{p.unit} | {p.access} | {_num(p.min)} | {_num(p.max)} | {note} |"
        )
    out += ["", "Canonical telemetry:", ""]
    for cp, src in rmap.telemetry.items():
        terms = " ".join(
            f"{'+' if t.sign > 0 else '-'}{'|' + t.point + '|' if t.magnitude else t.point}"
            for t in src.terms
        )
        times = f" x {src.times}" if src.times else ""
        factor = f" x {src.factor:g}" if src.factor != 1 else ""
        out.append(f"- `{cp.value}` = {terms}{times}{factor}")
    ctl = rmap.control
    out += ["", "Control sequences:", ""]
    for label, steps in (
        ("charge", ctl.set_power.charge),
        ("discharge", ctl.set_power.discharge),
        ("idle (0 kW)", ctl.set_power.idle),
        ("stop", ctl.stop),
        ("safe mode", ctl.safe_mode),
        ("heartbeat", ctl.heartbeat),
    ):
        if steps:
            out.append(f"- {label}: " + "; ".join(_step(s) for s in steps))
    out += ["", "Fault words:", ""]
    for table in rmap.faults:
        out.append(f"- `{table.point}` ({table.source.value}): {len(table.bits)} documented bits")
    return "\n".join(out) + "\n"


def all_markdown(maps: list[RegisterMap]) -> str:
    parts = [
        "# Register maps",
        "",
        "Generated from `edge/maps/*.yaml` by `flowerhub edge maps docs`.",
        "",
    ]
    return "\n".join(parts) + "\n".join(map_markdown(m) for m in maps)
