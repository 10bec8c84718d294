"""What a site shows it can deliver beyond its baseline when its inverter does not follow. Pure.

Per direction a :class:`Ceiling`: the most the battery delivered beyond its baseline (kW >= 0,
up = discharging more, down = charging more) while it was asked for more. Two sources feed a
site's :class:`DeliveryWatch`:

* the poll (:meth:`DeliveryWatch.sample`): asked ``A = target - baseline`` and delivered
  ``D = measured - baseline``, both of the poll (the baseline cancels out of an inverter
  that keeps doing its own self-consumption: ``D`` stays near 0 whatever the load does).
  When ``D`` stays short of ``A`` in ``A``'s direction by more than the read-back tolerance
  for a whole detection window (``DETECT_SETTLES`` OEM response times: a compliant battery
  has caught up with any target move by then, a load step included), the ceiling is the
  most it delivered in that window;
* the read-back of a command (:meth:`DeliveryWatch.observed`): a CLAMPED or OVERRIDDEN
  verdict where the inverter did not follow what was written (not the bridge's own clamp):
  what it delivered then, at once.

A ceiling stands while the site is seen short and for ``CEILING_HOLD_S`` after it last was,
and goes as soon as the battery follows a target beyond it (within the tolerance: the
inverter does what it is told again). While it
stands, the bridge reports the site's room with it (:meth:`DeliveryWatch.narrow`: the bounds
the headroom and each product's shortfall are computed with), so the published headroom and
what each armed product and order is reported to hold (:func:`held_within`) say what the site
can actually deliver, and the allocator moves the rest elsewhere. The writes are not narrowed:
the bridge keeps asking for the whole target, so an inverter that follows again shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from contract.enums import Product
from edge.bridge.bounds import Bounds
from edge.bridge.model import Cause
from edge.bridge.stack import InForce

#: Detection window of the poll's judgement, in OEM response times (dead time + 3 time
#: constants: :attr:`edge.bridge.override.ResponseTiming.settle_s`): twice what a compliant
#: battery needs to reach a moved target, so a target move is never taken for a ceiling.
DETECT_SETTLES = 2.0
#: How long a ceiling stands after the site was last seen short: the allocator's
#: ``AllocatorConfig.clamp_window_s`` default (60 s), so both sides believe a clamp as long.
CEILING_HOLD_S = 60.0

_UP, _DOWN = 1.0, -1.0


@dataclass(frozen=True)
class Ceiling:
    """At most ``kw`` (>= 0) beyond the baseline in one direction; last seen short at
    ``seen_at`` (the site was asked ``asked_kw`` then)."""

    kw: float
    asked_kw: float
    cause: Cause
    seen_at: datetime
    source: str  # "poll" or "read-back"


@dataclass
class _Side:
    sign: float
    short_since: datetime | None = None
    best_kw: float = 0.0  # the most delivered in the current short window
    ceiling: Ceiling | None = None


@dataclass
class DeliveryWatch:
    """One site's ceilings, up and down (see the module doc)."""

    hold_s: float = CEILING_HOLD_S
    up: _Side = field(default_factory=lambda: _Side(_UP))
    down: _Side = field(default_factory=lambda: _Side(_DOWN))

    def sample(
        self,
        now: datetime,
        target_kw: float | None,
        baseline_kw: float,
        measured_kw: float | None,
        *,
        tolerance_kw: float,
        window_s: float,
        cause: Cause,
    ) -> list[str]:
        """One poll's judgement (no target, or nothing measured: no judgement, a short
        window starts again). Returns what changed, for the log."""
        said: list[str] = []
        for side in (self.up, self.down):
            if target_kw is None or measured_kw is None:
                side.short_since, side.best_kw = None, 0.0
            else:
                asked = side.sign * (target_kw - baseline_kw)
                got = side.sign * (measured_kw - baseline_kw)
                said += _judge(
                    side, now, asked, got, tol=tolerance_kw, window_s=window_s, cause=cause
                )
            said += self._expire(side, now)
        return said

    def observed(
        self,
        now: datetime,
        written_kw: float,
        baseline_kw: float,
        measured_kw: float,
        *,
        tolerance_kw: float,
        cause: Cause,
    ) -> Ceiling | None:
        """A read-back found the inverter not following ``written_kw``: the ceiling in the
        direction asked (None: nothing was asked beyond the baseline, or it delivered it)."""
        for side in (self.up, self.down):
            asked = side.sign * (written_kw - baseline_kw)
            got = side.sign * (measured_kw - baseline_kw)
            if asked > tolerance_kw and got < asked - tolerance_kw:
                side.ceiling = Ceiling(max(0.0, got), asked, cause, now, "read-back")
                return side.ceiling
        return None

    def ceilings(self, now: datetime) -> tuple[Ceiling | None, Ceiling | None]:
        """(up, down) standing at ``now``."""
        return self._standing(self.up, now), self._standing(self.down, now)

    def _standing(self, side: _Side, now: datetime) -> Ceiling | None:
        c = side.ceiling
        return c if c is not None and (now - c.seen_at).total_seconds() <= self.hold_s else None

    def narrow(self, bounds: Bounds, baseline_kw: float, now: datetime) -> Bounds:
        """``bounds`` with the standing ceilings around ``baseline_kw`` (what the site's
        room is reported with; the cause of a narrowed end is the ceiling's)."""
        up, down = self.ceilings(now)
        out = bounds
        if up is not None and baseline_kw + up.kw < out.max_kw:
            out = replace(out, max_kw=baseline_kw + up.kw, up_cause=up.cause)
        if down is not None and baseline_kw - down.kw > out.min_kw:
            out = replace(out, min_kw=baseline_kw - down.kw, down_cause=down.cause)
        return out

    def _expire(self, side: _Side, now: datetime) -> list[str]:
        c = side.ceiling
        if c is None or (now - c.seen_at).total_seconds() <= self.hold_s:
            return []
        side.ceiling = None
        return [f"{_name(side)} ceiling {c.kw:.3f} kW lifted: not seen short for {self.hold_s:g} s"]


def _judge(
    side: _Side,
    now: datetime,
    asked: float,
    got: float,
    *,
    tol: float,
    window_s: float,
    cause: Cause,
) -> list[str]:
    c = side.ceiling
    if asked > tol and got < asked - tol:  # short of what it is asked
        if side.short_since is None:
            side.short_since, side.best_kw = now, got
        side.best_kw = max(side.best_kw, got)
        if c is not None:  # still short: it stands (lower it if it delivers less now)
            side.ceiling = replace(c, kw=min(c.kw, max(0.0, side.best_kw)), asked_kw=asked)
            side.ceiling = replace(side.ceiling, seen_at=now)
            return []
        if (now - side.short_since).total_seconds() < window_s:
            return []
        side.ceiling = Ceiling(max(0.0, side.best_kw), asked, cause, now, "poll")
        return [
            f"{_name(side)}: delivers {got:.3f} kW beyond its baseline of {asked:.3f} kW asked "
            f"for {window_s:.1f} s ({cause}): ceiling {side.ceiling.kw:.3f} kW reported"
        ]
    side.short_since, side.best_kw = None, 0.0
    if c is not None and asked > c.kw + tol and abs(got - asked) <= tol:
        # it follows a target beyond the ceiling: the inverter does what it is told again
        # (a battery lagging a baseline that moved is not asked beyond it: no lift)
        side.ceiling = None
        return [f"{_name(side)}: delivers {got:.3f} kW beyond its baseline again: ceiling lifted"]
    return []


def _name(side: _Side) -> str:
    return "up" if side.sign > 0 else "down"


def held_within(
    in_force: InForce, short: Mapping[Product, float]
) -> tuple[dict[Product, float], dict[Product, float]]:
    """What each armed product (capacity) and order (signed change) holds once ``short``
    (kW per product its full activation is short: :func:`edge.bridge.headroom.shortfalls`)
    is taken off: (armed, orders)."""
    armed = {
        p: max(0.0, a.params.capacity_kw - short.get(p, 0.0)) for p, a in in_force.arms.items()
    }
    orders: dict[Product, float] = {}
    for p, o in in_force.orders.items():
        kw = max(0.0, abs(o.delta_kw) - short.get(p, 0.0))
        orders[p] = kw if o.delta_kw >= 0 else -kw
    return armed, orders
