"""Self-consumption kept: the extra grid import caused by being armed, as a fraction of the
household load, measured at the edge (``edge.testing.twins``).

Setup: ``BENCH_SC_HOMES`` simulated homes (Huawei, Sungrow, SAJ in turn), each three times
with the same load, PV, battery and clock: in its own OEM self-consumption; under the bridge
with FCR-N 1 kW + FCR-D up 1.5 kW + FCR-D down 1.5 kW armed on its own baseline; and under the
bridge with the same arms on a 0 kW predetermined setpoint (what the bridge did before issue
14: every armed battery held at 0 kW). Early evening (18:00: the homes' load above their PV),
a steady 50.0 Hz, the production telemetry interval (1 s) and the OEMs' response times, for
``BENCH_SC_SECONDS``.

* value: extra import of the armed homes over their own-mode twins / household load, %;
* baseline (same run): the same for the homes held at 0 kW while armed;
* goal: <= 2 % (issue 14; the demo measured 77-82 % before it, a fleet at its own mix of
  PV and load).

What remains is the bridge's tracking of the home's load: the baseline is computed from the
1 s telemetry, written when it moved by ``min_step_kw`` (0.05 kW), and the battery follows
with the OEM's response time, where the OEM's own mode reacts within its control cycle.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from bench import BenchResult
from edge.testing.twins import measure

HOMES = int(os.environ.get("BENCH_SC_HOMES", "12"))
SECONDS = float(os.environ.get("BENCH_SC_SECONDS", "120"))
OEMS = ("huawei", "sungrow", "saj")


def run() -> list[BenchResult]:
    oems = [OEMS[i % len(OEMS)] for i in range(HOMES)]
    with tempfile.TemporaryDirectory(prefix="bench-sc-") as tmp:
        kept = asyncio.run(measure(Path(tmp), oems, seconds=SECONDS))
    return [
        BenchResult(
            name="edge.self_consumption.extra_import_while_armed",
            value=100.0 * kept.extra_fraction,
            unit="% of household load",
            baseline=100.0 * kept.held_fraction,
            goal="<= 2 % (issue 14; 77-82 % before it on the demo)",
            higher_is_better=False,
            note=(
                f"{kept.homes} homes x {kept.seconds:g} s at 18:00, 50.0 Hz, "
                f"{kept.armed_kw:g} kW armed per home (FCR-N + FCR-D up + down); load "
                f"{kept.load_kwh:.3f} kWh, import own mode {kept.import_own_kwh:.4f} kWh, "
                f"armed {kept.import_armed_kwh:.4f} kWh; baseline: the same arms on a 0 kW "
                f"setpoint (the bridge before issue 14), import {kept.import_held_kwh:.4f} kWh"
            ),
        )
    ]
