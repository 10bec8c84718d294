"""PNG plots for audit reports: Bode, Nyquist with the Req 8 circle, activation vs envelope
(delivered response, with the power, baseline and other products above), response per OEM.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state), so it
runs headless and in threads. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from analytics.freqresp import STABILITY_RADIUS, PeriodFit, grid_model, interpolate
from analytics.timeseries import FloatArray
from contract.enums import Product


def plot_bode(fits: Sequence[PeriodFit], path: str | Path, title: str = "") -> Path:
    """|F| and φ against the sine period's angular frequency (log axis)."""
    ordered = sorted(fits, key=lambda f: f.omega)
    w = [f.omega for f in ordered]
    fig = Figure(figsize=(7, 6))
    ax_gain, ax_phase = fig.subplots(2, 1, sharex=True)
    ax_gain.semilogx(w, [f.gain for f in ordered], "o-")
    ax_gain.set_ylabel("|F| (normalised)")
    ax_gain.grid(visible=True, which="both")
    ax_phase.semilogx(w, [f.phase_deg for f in ordered], "o-")
    ax_phase.set_ylabel("phase [deg]")
    ax_phase.set_xlabel("ω [rad/s]")
    ax_phase.grid(visible=True, which="both")
    fig.suptitle(title or "Sine-test frequency response")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def plot_nyquist(
    fits: Sequence[PeriodFit], product: Product, path: str | Path, *, margin: float = 0.95
) -> Path:
    """G0 = F·G (stability grid model) with the 0.43 circle and its margin circle."""
    w, f = interpolate(fits)
    g0 = f * grid_model(product, "stability")(w)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.plot(g0.real, g0.imag, "-", label="G0(jω), interpolated")
    pts = np.array([x.f for x in fits]) * grid_model(product, "stability")(
        np.array([x.omega for x in fits])
    )
    ax.plot(pts.real, pts.imag, "o", label="tested periods")
    ax.add_patch(Circle((-1, 0), STABILITY_RADIUS, fill=False, color="red", label="r = 0.43"))
    ax.add_patch(
        Circle(
            (-1, 0),
            STABILITY_RADIUS * margin,
            fill=False,
            ls="--",
            color="red",
            label=f"r = {STABILITY_RADIUS * margin:.4f} ({margin:.0%})",
        )
    )
    ax.set_xlim(-3, max(3.0, float(g0.real.max()) * 0.2))
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
    ax.grid(visible=True)
    ax.legend(loc="upper right")
    ax.set_title(f"Nyquist, {product.value} (TR25 Req 8)")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def plot_activation(
    t: FloatArray,
    response_mw: FloatArray,
    path: str | Path,
    *,
    expected_mw: FloatArray | None = None,
    envelope_mw: tuple[FloatArray, FloatArray] | None = None,
    title: str = "",
    power_mw: FloatArray | None = None,
    baseline_mw: FloatArray | None = None,
    reference_mw: FloatArray | None = None,
) -> Path:
    """Delivered response against the expected response and a (low, high) envelope.

    With ``power_mw`` a panel above shows what the response is measured from: the battery
    power, the baseline and (``reference_mw``, where other products are armed) the baseline
    plus the other products' expected responses.
    """
    fig = Figure(figsize=(9, 6.2 if power_mw is not None else 4))
    if power_mw is not None:
        ax_top, ax = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.3))
        ax_top.plot(t, power_mw, "-", color="#1f6feb", label="battery power")
        if baseline_mw is not None:
            ax_top.plot(t, baseline_mw, "--", color="#6b7280", label="baseline")
        if reference_mw is not None:
            ax_top.plot(t, reference_mw, ":", color="#d97706", label="baseline + other products")
        ax_top.set_ylabel("fleet [MW]")
        ax_top.grid(visible=True)
        ax_top.legend(loc="best", fontsize="small")
    else:
        ax = fig.subplots()
    if envelope_mw is not None:
        ax.fill_between(t, envelope_mw[0], envelope_mw[1], alpha=0.25, label="required envelope")
    if expected_mw is not None:
        ax.plot(t, expected_mw, "--", label="expected")
    ax.plot(t, response_mw, "-", label="delivered" if power_mw is not None else "measured")
    ax.set_xlabel("t [s]")
    ax.set_ylabel("response [MW]")
    ax.grid(visible=True)
    ax.legend(loc="best", fontsize="small")
    fig.suptitle(title or "Activation")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def plot_oem(
    t: FloatArray,
    response_mw: Mapping[str, FloatArray],
    path: str | Path,
    *,
    baseline_mw: Mapping[str, FloatArray] | None = None,
    title: str = "",
) -> Path:
    """Mean delivered response per site of each OEM (kW) and, below, its mean baseline."""
    with_base = bool(baseline_mw)
    fig = Figure(figsize=(9, 6 if with_base else 4))
    axes = fig.subplots(2, 1, sharex=True) if with_base else [fig.subplots()]
    colors = {}
    for oem, curve in response_mw.items():
        (line,) = axes[0].plot(t, curve * 1000.0, label=oem)
        colors[oem] = line.get_color()
    axes[0].set_ylabel("delivered per site [kW]")
    axes[0].grid(visible=True)
    axes[0].legend(loc="best", fontsize="small")
    if with_base and baseline_mw is not None:
        for oem, curve in baseline_mw.items():
            axes[1].plot(t, curve * 1000.0, "--", color=colors.get(oem), label=oem)
        axes[1].set_ylabel("baseline per site [kW]")
        axes[1].grid(visible=True)
    axes[-1].set_xlabel("t [s]")
    fig.suptitle(title or "Response per OEM")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


__all__ = ["plot_activation", "plot_bode", "plot_nyquist", "plot_oem"]
