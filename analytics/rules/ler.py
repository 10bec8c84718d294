"""LER (limited energy reservoir) rules: endurance and NEM state (TR25 §3.5, Tables 10-11).

Both are judged "where the data allows": they need ``energy_capacity_mwh`` (usable energy
for FCR) and an SOC signal (or, for endurance, ``initial_soc_pct`` and the power), and the
NEM check needs the reported ``NEM_<Service>`` flag; otherwise ``judge`` skips them and
``skipped_rules`` says why. SOC is used as the usable fraction
(SOC - soc_min)/(soc_max - soc_min) of ``energy_capacity_mwh``·(soc_max - soc_min)/100.

Endurance: with eqs 27-28 at zero setpoint and inflow, L_up = (E - E_min)/C·60 and
L_down = (E_max - E)/C·60 minutes; the minimum over the series must be >= 60 min in both
directions for FCR-N, >= 20 min up for FCR-D up, >= 20 min down for FCR-D down (TR25 §3.5,
SvK Q&A LER).

NEM (Table 11): NEM must be on, in the normal band 49.9 < f < 50.1 Hz, when the remaining
endurance falls below the enable threshold and off again above the disable threshold
(hysteresis): FCR-N enable at 30 min / disable at 57.5 min in either direction; FCR-D up on
the low side and FCR-D down on the high side at 20 min / 20 min. The reported flag is
compared with that expected state; samples within ``nem_grace_s`` (default 300 s, the
length of the NEM rolling mean) after an expected change or a band crossing are not
judged. The measured value is the number of disagreeing samples; it must be 0.
"""

from __future__ import annotations

import numpy as np

from analytics.rules.base import (
    TR25,
    Context,
    Evaluator,
    Measurement,
    MissingParameterError,
    Rule,
)
from analytics.timeseries import FloatArray
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import (
    FCRD_DOWN_START_HZ,
    FCRD_UP_START_HZ,
    cite,
    rule_tag,
    svk_service,
)

_T11 = "[TR25 Table 11] NEM"
_N_ON = cite(30.0, _T11 + " FCR-N enable at 30 min")
_N_OFF = cite(57.5, _T11 + " FCR-N disable at 57.5 min")
_D_ON = cite(20.0, _T11 + " FCR-D enable at 20 min")
_D_OFF = cite(20.0, _T11 + " FCR-D disable at 20 min")
#: (enable, disable) remaining endurance in minutes, per side; None = side not managed.
NEM_MINUTES: dict[Product, tuple[tuple[float, float] | None, tuple[float, float] | None]] = {
    Product.FCR_N: ((_N_ON, _N_OFF), (_N_ON, _N_OFF)),
    Product.FCR_D_UP: ((_D_ON, _D_OFF), None),
    Product.FCR_D_DOWN: (None, (_D_ON, _D_OFF)),
}
#: Endurance each product needs, in minutes.
NEED_MINUTES = {
    Product.FCR_N: cite(60.0, "[TR25 §3.5] FCR-N >= 60 min in both directions"),
    Product.FCR_D_UP: cite(20.0, "[TR25 §3.5], [SVK-QA-LER] FCR-D total endurance >= 20 min"),
    Product.FCR_D_DOWN: cite(20.0, "[TR25 §3.5], [SVK-QA-LER] FCR-D total endurance >= 20 min"),
}
#: NEM is active only inside the normal band, 49.9 < f < 50.1 Hz [TR25 §3.5.1].
NEM_BAND_HZ = (FCRD_UP_START_HZ, FCRD_DOWN_START_HZ)


def usable_soc(ctx: Context) -> tuple[FloatArray, float]:
    """(SOC as a fraction of the usable range, usable energy in MWh)."""
    p = ctx.params
    if p.energy_capacity_mwh is None or p.energy_capacity_mwh <= 0:
        raise MissingParameterError("energy_capacity_mwh", "LER", "usable MWh > 0")
    span = p.soc_max_pct - p.soc_min_pct
    if span <= 0:
        raise MissingParameterError("soc_max_pct", "LER", "must exceed soc_min_pct")
    s = ctx.series
    if s.soc_pct is not None:
        soc = s.soc_pct
    elif p.initial_soc_pct is not None:
        parts = (s.power_mw[1:] + s.power_mw[:-1]) / 2 * np.diff(s.t)  # MWs per interval
        used_mwh = np.concatenate(([0.0], np.cumsum(parts))) / 3600.0
        soc = p.initial_soc_pct - 100.0 * used_mwh / p.energy_capacity_mwh
    else:
        raise MissingParameterError("initial_soc_pct", "LER", "or an SOC column")
    return (soc - p.soc_min_pct) / span, p.energy_capacity_mwh * span / 100.0


def endurance_minutes(ctx: Context) -> tuple[FloatArray, FloatArray]:
    """Remaining endurance up and down (minutes) per sample, at capacity C."""
    frac, energy = usable_soc(ctx)
    cap = ctx.capacity("LER endurance")
    return frac * energy / cap * 60.0, (1.0 - frac) * energy / cap * 60.0


def ler_endurance(ctx: Context) -> Measurement:
    up_all, down_all = endurance_minutes(ctx)
    up, down = float(np.min(up_all)), float(np.min(down_all))
    if ctx.product is Product.FCR_N:
        value, which = min(up, down), "min(up, down)"
    elif ctx.product is Product.FCR_D_UP:
        value, which = up, "up"
    else:
        value, which = down, "down"
    return Measurement(
        value,
        NEED_MINUTES[ctx.product],
        ">=",
        f"{which}; L_up={up:.1f} min, L_down={down:.1f} min (minimum over the series)",
    )


def _hysteresis(low: FloatArray, enable: float, disable: float) -> FloatArray:
    """On when ``low`` < enable, off when > disable, else unchanged (starts off)."""
    enable, disable = float(enable), float(disable)  # plain floats for the per-sample loop
    state = np.zeros(low.shape, dtype=bool)
    on = False
    for i, value in enumerate(low):
        if value < enable:
            on = True
        elif value > disable:
            on = False
        state[i] = on
    return state


def expected_nem(ctx: Context) -> FloatArray:
    """Expected NEM_allowed per sample: -1 (charge), +1 (discharge) or 0 (TR25 eq 14)."""
    up, down = endurance_minutes(ctx)
    low_side, high_side = NEM_MINUTES[ctx.product]
    allowed = np.zeros_like(up)
    if low_side is not None:
        allowed[_hysteresis(up, *low_side)] = -1.0
    if high_side is not None:
        allowed[_hysteresis(down, *high_side)] = 1.0
    f = ctx.series.frequency("NEM band")
    allowed[(f <= NEM_BAND_HZ[0]) | (f >= NEM_BAND_HZ[1])] = 0.0
    return allowed


def nem_state(ctx: Context) -> Measurement:
    s = ctx.series
    column = f"NEM_{svk_service(ctx.product)}"
    reported = s.require_signal(column, "NEM state") != 0
    expected = expected_nem(ctx) != 0
    changes = s.t[1:][np.diff(expected.astype(np.int8)) != 0]
    grace = ctx.params.nem_grace_s
    judged = np.ones(s.n, dtype=bool)
    for t_change in changes:
        judged &= ~((s.t >= t_change) & (s.t < t_change + grace))
    bad = np.flatnonzero(judged & (reported != expected))
    first = f"; first at t={s.t[bad[0]]:.1f} s" if bad.size else ""
    return Measurement(
        float(bad.size),
        0.0,
        "<=",
        f"{int(judged.sum())} samples judged, grace {grace:.0f} s after changes{first}",
    )


def _rule(
    product: Product,
    rid: str,
    text: str,
    unit: str,
    *,
    fn: Evaluator,
    needs: tuple[tuple[str, ...], ...],
) -> Rule:
    return Rule(
        rule_id=f"{rule_tag(product)}.{rid}",
        product=product,
        test_types=frozenset({TestType.OPERATION}),
        version=TR25,
        requirement=text,
        reference="TR25 §3.5, Tables 10-11, eqs 14-17, 27-28",
        unit=unit,
        evaluate=fn,
        needs=needs,
    )


_ENERGY = ("param:energy_capacity_mwh",)
RULES: tuple[Rule, ...] = tuple(
    rule
    for product in (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN)
    for rule in (
        _rule(
            product,
            "LER.ENDURANCE",
            f"LER endurance >= {NEED_MINUTES[product]:g} min",
            "min",
            fn=ler_endurance,
            needs=(_ENERGY, ("signal:soc_pct", "param:initial_soc_pct")),
        ),
        _rule(
            product,
            "LER.NEM_STATE",
            "NEM on/off as the Table 11 thresholds require",
            "samples",
            fn=nem_state,
            needs=(_ENERGY, ("signal:soc_pct",), (f"signal:NEM_{svk_service(product)}",)),
        ),
    )
)
