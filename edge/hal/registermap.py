"""The register-map file model: ONE pydantic model validates every `edge/maps/<oem>.yaml`.

A bad map (overlapping points, out-of-range address, unknown type or unit, a sequence writing a
non-writable point, ...) fails at load with a `MapError` naming the file and the point. The
JSON schema for editors is generated from this model (`flowerhub edge maps schema`).

Timing per connection type (``timing:``): each link (an inverter's own LAN port, a dongle
model, ...) gives its settle time after connect, gaps, read-back settle and timeout, every
value with its source. ``timing.default`` is the link assumed before identification when the
site config names none (the most conservative one); identification picks a link by firmware
string or unit id (``firmware_prefixes`` / ``unit_ids``), the site config by name
(:meth:`RegisterMap.with_link`). The ``connection:`` section holds what does not depend on
the link (ports, unit ids, block sizes, heartbeat); its timing fields are filled from the
link in force and never written in the file. Firmware variants overlay points, connection
keys and per-link timing; a variant is chosen by firmware prefix or by the site config
(:meth:`RegisterMap.with_variant`), so a variant without prefixes is still reachable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.enums import FaultSource, Severity, SiteMode
from edge.hal.codecs import RAW_RANGE, TYPE_SENTINELS, RegType, WordOrder, register_count
from edge.hal.errors import MapError
from edge.hal.points import CANONICAL_UNITS, CanonicalPoint

Unit = Literal[
    "", "W", "kW", "Wh", "kWh", "%", "permille", "Hz", "V", "A", "Ah", "degC", "min", "s",
    "var", "VA", "kOhm",
]  # fmt: skip

# Factor from a map unit to the canonical unit of the same dimension.
UNIT_TO_CANONICAL: dict[str, tuple[str, float]] = {
    "W": ("kW", 0.001),
    "kW": ("kW", 1.0),
    "Wh": ("kWh", 0.001),
    "kWh": ("kWh", 1.0),
    "%": ("%", 1.0),
    "permille": ("", 0.001),
    "Hz": ("Hz", 1.0),
    "V": ("V", 1.0),
    "A": ("A", 1.0),
    "Ah": ("Ah", 1.0),
    "": ("", 1.0),
}

# Variables a control step may take its value from (computed by the planner from the command).
STEP_VARIABLES = ("power_w", "power_kw", "power_permille", "duration_min", "heartbeat_s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    name: str
    code: int | None = Field(default=None, description="Device type code, if the model is a code")
    rated_power_kw: float | None = None


class Header(_Strict):
    oem: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    models: list[ModelInfo] = Field(min_length=1)
    model_prefixes: list[str] = Field(
        default_factory=list, description="Accepted model-string prefixes (string model points)"
    )
    manuals: list[str] = Field(min_length=1, description="Manual / source references")
    firmware_tested: list[str] = Field(default_factory=list)
    decisions: list[str] = Field(
        default_factory=list, description="Choices made where sources disagree, with reasons"
    )
    word_order: WordOrder = "high_first"


# Connection fields that come from the link's timing (``timing.links.<link>``).
TIMING_FIELDS = (
    "connect_settle_s",
    "request_gap_s",
    "write_gap_s",
    "readback_settle_s",
    "timeout_s",
)


class Connection(_Strict):
    ports: list[int] = Field(min_length=1)
    unit_ids: list[int] = Field(min_length=1)
    link: str = Field(default="", description="The link whose timing is in force (filled in)")
    connect_settle_s: float = Field(ge=0)
    request_gap_s: float = Field(ge=0)
    write_gap_s: float = Field(ge=0, description="Between two writes")
    readback_settle_s: float = Field(
        default=0.0, ge=0, description="After a write, before the next holding-register read"
    )
    timeout_s: float = Field(gt=0)
    max_registers_per_read: int = Field(ge=1, le=125)
    max_read_gap: int = Field(default=8, ge=0, description="Unwanted registers a block may span")
    heartbeat_period_s: float | None = Field(default=None, gt=0)


class Point(_Strict):
    address: int = Field(ge=0, le=0xFFFF, description="Wire (PDU) address")
    table: Literal["holding", "input"] = "holding"
    type: RegType
    length: int | None = Field(default=None, ge=1, le=125, description="Registers, str only")
    word_order: WordOrder | None = None
    scale: float = 1.0
    unit: Unit = ""
    access: Literal["r", "rw", "w"] = "r"
    min: float | None = None
    max: float | None = None
    invalid_value: int | Literal["type_default", "none"] = "type_default"
    values: dict[int, str] = Field(default_factory=dict, description="Enumeration labels")
    doc: str = ""

    @property
    def count(self) -> int:
        return register_count(self.type, self.length)

    @property
    def sentinel(self) -> int | None:
        if self.invalid_value == "none" or self.type == "str":
            return None
        if self.invalid_value == "type_default":
            return TYPE_SENTINELS[self.type]
        return self.invalid_value

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "w")


class Term(_Strict):
    point: str
    sign: Literal[1, -1] = 1
    magnitude: bool = Field(default=False, description="Use |value| (direction from `times`)")


class Source(_Strict):
    """Canonical value = factor * sum(sign * canonical(point)) [* canonical(times)]."""

    terms: list[Term] = Field(min_length=1)
    times: str | None = None
    factor: float = 1.0

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "point" in data:
            data = dict(data)
            term = {k: data.pop(k) for k in ("point", "sign", "magnitude") if k in data}
            data["terms"] = [term]
        return data


class ModeRule(_Strict):
    point: str
    values: dict[int, SiteMode]


class Identification(_Strict):
    model: str
    serial: str
    firmware: str
    rated_power: str | None = None


class Step(_Strict):
    """One write: `point` + `value` (FC06/FC16) or `points` + `values` (one FC16 block)."""

    fc: Literal[6, 16]
    point: str | None = None
    value: float | str | None = None
    points: list[str] | None = None
    values: list[float | str] | None = None
    delay_after_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> Step:
        single = self.point is not None and self.value is not None
        multi = self.points is not None and self.values is not None
        if single == multi:
            raise ValueError("a step has either point+value or points+values")
        if multi and len(self.points or []) != len(self.values or []):
            raise ValueError("points and values differ in length")
        for v in [self.value] if single else list(self.values or []):
            if isinstance(v, str) and v not in STEP_VARIABLES:
                raise ValueError(f"unknown value variable {v!r}; use one of {STEP_VARIABLES}")
        return self

    def targets(self) -> list[tuple[str, float | str]]:
        if self.point is not None and self.value is not None:
            return [(self.point, self.value)]
        return list(zip(self.points or [], self.values or [], strict=True))


class SetPower(_Strict):
    charge: list[Step] = Field(min_length=1)
    discharge: list[Step] = Field(min_length=1)
    idle: list[Step] = Field(min_length=1)
    power_point: str = Field(description="Point whose min/max bounds |power| (W)")
    default_duration_min: int = Field(default=0, ge=0)


class DirectionRule(_Strict):
    point: str
    values: dict[int, Literal[-1, 0, 1]]


class Readback(_Strict):
    direction: DirectionRule
    charge_power: Source
    discharge_power: Source


class Control(_Strict):
    set_power: SetPower
    stop: list[Step] = Field(min_length=1)
    safe_mode: list[Step] = Field(min_length=1)
    heartbeat: list[Step] = Field(default_factory=list)
    readback: Readback


class FaultBit(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_.]+$")
    name: str
    severity: Severity
    source: FaultSource | None = None


class FaultTable(_Strict):
    point: str
    source: FaultSource
    bits: dict[int, FaultBit]


class CitedValue(_Strict):
    """A timing value (seconds) and where it comes from."""

    value: float = Field(ge=0)
    source: str = Field(min_length=1, description="Document, integration or stated choice")


class LinkTiming(_Strict):
    """How one connection type (LAN port, dongle model) is paced; every value cited."""

    description: str
    firmware_prefixes: list[str] = Field(
        default_factory=list, description="Identification: firmware strings read through it"
    )
    unit_ids: list[int] = Field(
        default_factory=list, description="Identification: unit ids that mean this link"
    )
    connect_settle_s: CitedValue
    request_gap_s: CitedValue
    write_gap_s: CitedValue
    readback_settle_s: CitedValue
    timeout_s: CitedValue

    def values(self) -> dict[str, float]:
        return {name: getattr(self, name).value for name in TIMING_FIELDS}


class Timing(_Strict):
    default: str = Field(description="Link assumed before identification (most conservative)")
    links: dict[str, LinkTiming] = Field(min_length=1)


class Variant(_Strict):
    description: str
    firmware_prefixes: list[str] = Field(default_factory=list)
    points: dict[str, dict[str, Any]] = Field(default_factory=dict)
    connection: dict[str, Any] = Field(
        default_factory=dict, description="Link-independent connection keys (ports, ...)"
    )
    timing: dict[str, dict[str, CitedValue]] = Field(
        default_factory=dict, description="link -> timing field -> value with its source"
    )


class RegisterMap(_Strict):
    header: Header
    connection: Connection
    timing: Timing
    points: dict[str, Point]
    identification: Identification
    telemetry: dict[CanonicalPoint, Source]
    mode: list[ModeRule] = Field(min_length=1)
    control: Control
    faults: list[FaultTable] = Field(default_factory=list)
    variants: dict[str, Variant] = Field(default_factory=dict)
    file: str = Field(default="<memory>", exclude=True)
    variant: str | None = Field(default=None, exclude=True, description="Overlay applied")

    @model_validator(mode="before")
    @classmethod
    def _link_timing(cls, data: Any) -> Any:
        """Fill the connection's timing fields from the link in force (module doc)."""
        if not isinstance(data, dict) or not isinstance(data.get("connection"), dict):
            return data
        timing = data.get("timing")
        if not isinstance(timing, dict) or not isinstance(timing.get("links"), dict):
            return data
        conn = dict(data["connection"])
        written = sorted(set(conn) & set(TIMING_FIELDS))
        if written:
            raise ValueError(
                f"connection: {', '.join(written)} come from timing.links.<link>, not from "
                "connection (one cited value per connection type)"
            )
        link = conn.get("link") or timing.get("default")
        profile = timing["links"].get(link)
        if not isinstance(profile, dict):
            raise ValueError(
                f"link {link!r} (timing.default / connection.link) is not a link of "
                f"timing.links {sorted(timing['links'])}"
            )
        for name in TIMING_FIELDS:
            entry = profile.get(name)
            if isinstance(entry, dict) and "value" in entry:
                conn[name] = entry["value"]
        conn["link"] = link
        return {**data, "connection": conn}

    @property
    def oem(self) -> str:
        return self.header.oem

    def word_order(self, point: Point) -> WordOrder:
        return point.word_order or self.header.word_order

    def point(self, name: str) -> Point:
        try:
            return self.points[name]
        except KeyError:
            raise MapError(self.file, name, "no such point") from None

    def _dump_for_parse(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["connection"] = {k: v for k, v in data["connection"].items() if k not in TIMING_FIELDS}
        return data

    def with_variant(self, name: str) -> RegisterMap:
        """Apply a firmware-variant overlay (points, connection keys, per-link timing)."""
        if name not in self.variants:
            raise MapError(
                self.file, None, f"no variant {name!r}; variants: {sorted(self.variants)}"
            )
        variant = self.variants[name]
        data = self._dump_for_parse()
        for pname, patch in variant.points.items():
            if pname not in data["points"]:
                raise MapError(self.file, pname, f"variant {name!r} patches an unknown point")
            data["points"][pname] = {**data["points"][pname], **patch}
        data["connection"] = {**data["connection"], **variant.connection}
        for link, patch in variant.timing.items():
            if link not in data["timing"]["links"]:
                raise MapError(self.file, None, f"variant {name!r} times an unknown link {link!r}")
            for field, cited in patch.items():
                data["timing"]["links"][link][field] = cited.model_dump(mode="json")
        # the model's checks here; the semantic ones (edge.hal.mapcheck) ran on every variant
        # when the map was loaded (edge.hal.maps.parse_map)
        rmap = validate_map(data, f"{self.file}#{name}")
        return rmap.model_copy(update={"variant": name})

    def with_link(self, link: str) -> RegisterMap:
        """The map with ``link``'s timing in force (the site config's or the identified)."""
        if link not in self.timing.links:
            raise MapError(self.file, None, f"no link {link!r}; links: {sorted(self.timing.links)}")
        if link == self.connection.link:
            return self
        values = self.timing.links[link].values()
        conn = self.connection.model_copy(update={"link": link, **values})
        return self.model_copy(update={"connection": conn})

    def variant_for_firmware(self, firmware: str) -> str | None:
        for name, variant in self.variants.items():
            if any(firmware.startswith(p) for p in variant.firmware_prefixes):
                return name
        return None

    def link_for(self, firmware: str, unit_id: int | None) -> str | None:
        """The link identification points to: by firmware string, else by unit id."""
        for name, link in self.timing.links.items():
            if any(firmware.startswith(p) for p in link.firmware_prefixes):
                return name
        for name, link in self.timing.links.items():
            if unit_id is not None and unit_id in link.unit_ids:
                return name
        return None

    def timing_sources(self) -> dict[str, str]:
        """Timing field -> its source, for the link in force (doctor, docs)."""
        link = self.timing.links[self.connection.link]
        return {name: getattr(link, name).source for name in TIMING_FIELDS}


def validate_map(data: Any, file: str) -> RegisterMap:
    """The pydantic model of a parsed map document (MapError naming the file and point);
    the semantic checks are :func:`edge.hal.mapcheck.check_map`'s."""
    try:
        rmap = RegisterMap.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        point = loc[1] if len(loc) > 1 and loc[0] == "points" else None
        where = ".".join(loc)
        raise MapError(file, point, f"{where}: {err['msg']}") from None
    return rmap.model_copy(update={"file": file})


def type_bounds(point: Point) -> tuple[float, float]:
    """Engineering range representable by the point's type and scale."""
    lo, hi = RAW_RANGE[point.type]
    a, b = lo * point.scale, hi * point.scale
    return (min(a, b), max(a, b))


def canonical_unit_ok(point: Point, canonical: CanonicalPoint) -> bool:
    target = CANONICAL_UNITS[canonical]
    conv = UNIT_TO_CANONICAL.get(point.unit)
    return conv is not None and conv[0] == target


def json_schema() -> dict[str, Any]:
    return RegisterMap.model_json_schema()
