"""A demo scenario as data: phases (frequency traces, activation orders), faults, expectations.

A scenario file (``flowerhub/demo/scenarios/<name>.yaml``) says what happens to the fleet,
on a timeline in seconds from the scenario start:

* ``fleet``: default size and seed of the fleet composition (``flowerhub.demo.fleet``);
* ``reserves``: products armed on every home at once for the whole scenario (a Swedish
  home-battery contract: FCR-N + FCR-D up + FCR-D down on the same batteries), sent as one
  ``ReserveAssignment`` each when the scenario starts; a phase's own arm of the same product
  (an FCR-D up test) rides over it and the assignment is armed again when the phase ends;
* ``phases``: run one after another. A ``frequency`` phase feeds a frequency trace to every
  simulated inverter (piecewise linear ``points`` or a ``sine``) and announces it as a
  ``MarketActivation`` of kind TEST (FCR tests) or FREQUENCY_EVENT (FFR); an ``order`` phase
  produces an aFRR/mFRR ``MarketActivation`` of kind ORDER (a change against the fleet's
  baseline) and holds it for ``duration_s``; a ``hold`` phase keeps a steady frequency with
  nothing activated: the homes armed, covering their own load (the self-consumption figure,
  ``flowerhub.demo.selfconsumption``, is measured over the hold phases);
* ``incidents``: things that happen at a time to one site (by fleet index; with ``every: n``
  also to every n-th site after it, so a scenario scales with ``--sites``): a MAJOR fault bit,
  a home that drops offline, an inverter whose firmware ignores remote commands, or a load
  (a sauna, an EV charger: ``load_kw``) that switches on in the home (0 switches it off);
  or, with no site, ``worker_crash``: the streams worker that leads is killed (SIGKILL; the
  demo's supervisor starts it again and another worker takes the lead);
* ``expected``: audit verdicts by rule id (PASS/FAIL), the sites expected among offenders
  (``only_these_offenders``: and no other site: an empty table when none is expected), and
  the most extra grid import the armed homes may cause (``max_extra_import_pct``, % of their
  household load over the hold phases).

Capacities are per site (kW) so a scenario scales with ``--sites``. Pure: no Kafka here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from contract.enums import Product

SCENARIO_PACKAGE = "flowerhub.demo.scenarios"
FFR_OPTIONS_HZ = (49.7, 49.6, 49.5)
DEFAULT_SCENARIO = "fcrd_up_ramp"

_Hz = Annotated[float, Field(ge=45.0, le=55.0, allow_inf_nan=False)]
_Seconds = Annotated[float, Field(ge=0.0, le=24 * 3600.0, allow_inf_nan=False)]


class ScenarioError(ValueError):
    """A scenario file that is missing, not YAML or not a valid scenario (file and field named)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105  # a verdict, not a password
    FAIL = "FAIL"


def _one_of(*allowed: Product) -> Callable[[Product], Product]:
    def check(product: Product) -> Product:
        if product not in allowed:
            raise ValueError(f"{product} is not one of {', '.join(allowed)}")
        return product

    return check


#: a phase plays a frequency: the products armed against frequency
FrequencyProduct = Annotated[
    Product,
    AfterValidator(_one_of(Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR)),
]
#: an order is a change of power the TSO asks for
OrderProduct = Annotated[Product, AfterValidator(_one_of(Product.AFRR, Product.MFRR))]


class Sine(_Strict):
    """``centre_hz + amplitude_hz * sin(2 pi t / period_s)`` for ``periods`` periods."""

    centre_hz: _Hz
    amplitude_hz: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    period_s: Annotated[float, Field(ge=2.0, le=600.0)]
    periods: Annotated[int, Field(ge=1, le=50)]
    lead_in_s: Annotated[float, Field(ge=0.0, le=600.0)] = 10.0


class FrequencyPhase(_Strict):
    """A frequency trace fed to every simulator; the fleet answers with its armed droop."""

    kind: Literal["frequency"]
    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9_]+$")]
    product: FrequencyProduct
    capacity_kw_per_site: Annotated[float, Field(gt=0.0, le=50.0)]
    points: list[tuple[_Seconds, _Hz]] | None = None
    sine: Sine | None = None
    settle_s: Annotated[float, Field(ge=0.0, le=600.0)] = 5.0
    # FFR only: the option sold (activation frequency; 49.7 -> 1.3 s, 49.6 -> 1.0 s,
    # 49.5 -> 0.7 s), sent as the FFR ReserveAssignment the audit and the allocator read.
    ffr_activation_hz: float | None = None

    @model_validator(mode="after")
    def _one_trace(self) -> FrequencyPhase:
        if (self.product is Product.FFR) != (self.ffr_activation_hz is not None):
            raise ValueError("ffr_activation_hz is required for FFR phases and only for them")
        if self.ffr_activation_hz is not None and self.ffr_activation_hz not in FFR_OPTIONS_HZ:
            raise ValueError(f"ffr_activation_hz must be one of {FFR_OPTIONS_HZ} (SvK FFR options)")
        if (self.points is None) == (self.sine is None):
            raise ValueError("a frequency phase needs exactly one of points or sine")
        if self.points is not None:
            if len(self.points) < 2:
                raise ValueError("points needs at least two (t, Hz) pairs")
            times = [t for t, _ in self.points]
            if times[0] != 0.0:
                raise ValueError(f"points must start at t=0, not {times[0]}")
            if any(b < a for a, b in itertools.pairwise(times)):
                raise ValueError("points must be in time order")
        return self

    @property
    def duration_s(self) -> float:
        if self.points is not None:
            return self.points[-1][0]
        assert self.sine is not None  # noqa: S101  # checked by the validator
        return self.sine.lead_in_s + self.sine.period_s * self.sine.periods

    def frequency_at(self, t: float) -> float:
        """The trace's frequency t seconds into the phase (held at its ends)."""
        if self.sine is not None:
            s = self.sine
            if t < s.lead_in_s:
                return s.centre_hz
            phase = 2.0 * math.pi * (t - s.lead_in_s) / s.period_s
            return s.centre_hz + s.amplitude_hz * math.sin(phase)
        assert self.points is not None  # noqa: S101  # checked by the validator
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, f0), (t1, f1) in itertools.pairwise(pts):
            if t <= t1:
                return f1 if t1 == t0 else f0 + (f1 - f0) * (t - t0) / (t1 - t0)
        return pts[-1][1]


class OrderPhase(_Strict):
    """An aFRR/mFRR activation order held for ``duration_s`` (the pipeline sets site powers)."""

    kind: Literal["order"]
    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9_]+$")]
    product: OrderProduct
    requested_kw_per_site: Annotated[float, Field(ge=-50.0, le=50.0)]
    lead_in_s: Annotated[float, Field(ge=0.0, le=600.0)] = 15.0
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0)]
    settle_s: Annotated[float, Field(ge=0.0, le=600.0)] = 5.0

    @model_validator(mode="after")
    def _nonzero(self) -> OrderPhase:
        if self.requested_kw_per_site == 0.0:
            raise ValueError("requested_kw_per_site must not be 0")
        return self


class HoldPhase(_Strict):
    """A steady frequency with nothing activated: the homes armed, on their own baselines."""

    kind: Literal["hold"]
    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9_]+$")]
    frequency_hz: _Hz = 50.0
    duration_s: Annotated[float, Field(gt=0.0, le=3600.0)]


Phase = Annotated[FrequencyPhase | OrderPhase | HoldPhase, Field(discriminator="kind")]

#: products a scenario can keep armed throughout (FFR needs its option: a phase of its own)
StandingProduct = Annotated[
    Product, AfterValidator(_one_of(Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN))
]


class Reserve(_Strict):
    """A product armed on every home from the scenario's start to its end."""

    product: StandingProduct
    capacity_kw_per_site: Annotated[float, Field(gt=0.0, le=50.0)]


class IncidentKind(StrEnum):
    FAULT = "fault"  # set a fault bit in the site's fault word (MAJOR bits stop the battery)
    OFFLINE = "offline"  # the home's Modbus server stops (router down, dongle unplugged)
    OVERRIDE = "override"  # the inverter's firmware ignores remote commands from now on
    LOAD = "load"  # an appliance of load_kw switches on in the home (0: off again)
    WORKER_CRASH = "worker_crash"  # the streams worker that leads is killed (SIGKILL)


class Incident(_Strict):
    """Something that happens at ``at_s`` to one site (``site``: index in the fleet; with
    ``every``, to every ``every``-th site from ``site`` on as well: :meth:`sites`), or, for
    ``worker_crash``, to the streams worker that leads (no site)."""

    at_s: _Seconds
    site: Annotated[int, Field(ge=0)] | None = None
    every: Annotated[int, Field(ge=1)] | None = None
    kind: IncidentKind
    point: str | None = None
    bit: Annotated[int, Field(ge=0, le=31)] | None = None
    load_kw: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _fault_target(self) -> Incident:
        has_target = self.point is not None and self.bit is not None
        if (self.kind is IncidentKind.WORKER_CRASH) != (self.site is None):
            raise ValueError("every incident but worker_crash names its site; worker_crash none")
        if self.kind is IncidentKind.FAULT and not has_target:
            raise ValueError("a fault incident needs point and bit")
        if self.kind is not IncidentKind.FAULT and (self.point is not None or self.bit is not None):
            raise ValueError(f"a {self.kind.value} incident takes no point or bit")
        if (self.kind is IncidentKind.LOAD) != (self.load_kw is not None):
            raise ValueError("a load incident needs load_kw; no other incident takes it")
        return self

    def sites(self, fleet_size: int) -> list[int]:
        """The fleet indices it happens to in a fleet of ``fleet_size`` (none for
        ``worker_crash``: the workers', not a site's)."""
        if self.site is None:
            return []
        if self.every is None:
            return [self.site]
        return list(range(self.site, fleet_size, self.every))


class FleetDefaults(_Strict):
    sites: Annotated[int, Field(ge=3, le=5000)] = 60
    seed: int = 7


class Expected(_Strict):
    """What the audit must say: verdicts by rule id, and offending sites by fleet index."""

    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    offender_sites: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    # phase name -> text the audit's error must contain: the activation cannot be judged
    # (e.g. FFR needs 100 ms logging the simulated dongles cannot give)
    unjudgeable: dict[str, str] = Field(default_factory=dict)
    # the offenders table holds offender_sites and no other site (empty when none expected)
    only_these_offenders: bool = False
    # extra grid import caused by being armed, % of household load over the hold phases
    max_extra_import_pct: Annotated[float, Field(ge=0.0, le=100.0)] | None = None


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9_]+$")]
    description: str = ""
    fleet: FleetDefaults = FleetDefaults()
    reserves: list[Reserve] = Field(default_factory=list)
    phases: Annotated[list[Phase], Field(min_length=1)]
    incidents: list[Incident] = Field(default_factory=list)
    expected: Expected = Expected()

    @model_validator(mode="after")
    def _unique_phases(self) -> Scenario:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique: {names}")
        unknown = set(self.expected.unjudgeable) - set(names)
        if unknown:
            raise ValueError(f"expected.unjudgeable names no phase: {sorted(unknown)}")
        if self.incidents and max(i.at_s for i in self.incidents) > self.duration_s:
            raise ValueError(f"an incident is after the scenario's end ({self.duration_s} s)")
        products = [r.product for r in self.reserves]
        if len(set(products)) != len(products):
            raise ValueError(f"reserves name a product twice: {[p.value for p in products]}")
        if self.expected.max_extra_import_pct is not None and not any(
            isinstance(p, HoldPhase) for p in self.phases
        ):
            raise ValueError("expected.max_extra_import_pct needs a hold phase to measure over")
        return self

    @property
    def duration_s(self) -> float:
        return sum(phase_span(p) for p in self.phases)

    def phase_starts(self) -> list[tuple[float, Phase]]:
        """Each phase with its start time (s from scenario start)."""
        out: list[tuple[float, Phase]] = []
        t = 0.0
        for p in self.phases:
            out.append((t, p))
            t += phase_span(p)
        return out

    def check_fleet_size(self, sites: int) -> None:
        """Raise ScenarioError when an incident or expectation names a site beyond ``sites``."""
        used = [i.site for i in self.incidents if i.site is not None]
        used += self.expected.offender_sites
        if used and max(used) >= sites:
            raise ScenarioError(
                f"scenario {self.name} refers to site index {max(used)}, "
                f"the fleet has only {sites} sites (use --sites {max(used) + 1} or more)"
            )


def phase_span(p: FrequencyPhase | OrderPhase | HoldPhase) -> float:
    """Time a phase takes, its settle time after it included."""
    if isinstance(p, OrderPhase):
        return p.lead_in_s + p.duration_s + p.settle_s
    if isinstance(p, HoldPhase):
        return p.duration_s
    return p.duration_s + p.settle_s


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "<root>"
        raise ScenarioError(
            f"{source}: {where}: {first['msg']} ({exc.error_count()} error(s))"
        ) from exc


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with the package."""
    root = resources.files(SCENARIO_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        source = str(path)
    else:
        if name_or_path not in builtin_names():
            raise ScenarioError(
                f"no scenario {name_or_path!r}; built-in: {', '.join(builtin_names())}"
            )
        res = resources.files(SCENARIO_PACKAGE).joinpath(f"{name_or_path}.yaml")
        text = res.read_text(encoding="utf-8")
        source = f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    return parse_scenario(data, source)
