"""Plots write real PNG files."""

from __future__ import annotations

import cmath
import math
from pathlib import Path

import numpy as np

from analytics.freqresp import PeriodFit
from analytics.plots import plot_activation, plot_bode, plot_nyquist
from contract.enums import Product

PNG = b"\x89PNG\r\n\x1a\n"


def fits() -> list[PeriodFit]:
    out = []
    for period in (10, 25, 60, 150):
        z = cmath.exp(-1j * 2 * math.pi / period * 0.5) / (1 + 1j * 2 * math.pi / period * 2.0)
        out.append(PeriodFit(float(period), abs(z), math.degrees(cmath.phase(z)), 0.01, 5))
    return out


def test_plots_are_png(tmp_path: Path) -> None:
    t = np.linspace(0.0, 60.0, 601)
    expected = np.clip(t / 7.5, 0.0, 1.0)
    paths = [
        plot_bode(fits(), tmp_path / "bode.png"),
        plot_nyquist(fits(), Product.FCR_N, tmp_path / "nyq.png"),
        plot_activation(
            t,
            0.95 * expected,
            tmp_path / "act.png",
            expected_mw=expected,
            envelope_mw=(0.86 * expected, 1.2 * expected),
        ),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG)
        assert len(data) > 5_000
