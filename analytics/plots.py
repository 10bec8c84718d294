"""PNG plots for audit reports: Bode, Nyquist with the Req 8 circle, activation vs envelope.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state), so it
runs headless and in threads. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
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
) -> Path:
    """Measured response against the expected response and a (low, high) envelope."""
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    if envelope_mw is not None:
        ax.fill_between(t, envelope_mw[0], envelope_mw[1], alpha=0.25, label="required envelope")
    if expected_mw is not None:
        ax.plot(t, expected_mw, "--", label="expected")
    ax.plot(t, response_mw, "-", label="measured")
    ax.set_xlabel("t [s]")
    ax.set_ylabel("response [MW]")
    ax.grid(visible=True)
    ax.legend(loc="best")
    ax.set_title(title or "Activation")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


__all__ = ["plot_activation", "plot_bode", "plot_nyquist"]
