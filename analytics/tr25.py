"""The standard prequalification test schedules of SvK's TR25 (Tables 3 and 4).

Facts the audit reads to find the parts of a standard test (``analytics.audit.extract``) and
the test signals are built from (``analytics.testing.sequences``). Seconds from the test's
start.
"""

from __future__ import annotations

# FCR-D up ramp sequence (TR25 Table 4, ramps 1..6): (start s, target Hz, speed Hz/s).
FCRD_UP_RAMPS = (
    (30.0, 49.45, 0.14),
    (34.9, 49.9, 0.09),
    (90.0, 49.5, 0.24),
    (390.0, 49.9, 0.24),
    (690.0, 49.0, 0.24),
    (750.0, 50.0, 0.24),
)
FCRD_RAMP_END_S = 1050.0
# FCR-N step sequence (TR25 Table 3): (start s, frequency Hz); ends at 1260 s.
FCRN_STEPS = ((0.0, 50.0), (30.0, 49.95), (60.0, 50.0), (360.0, 49.9), (660.0, 50.1), (960.0, 50.0))
FCRN_STEP_END_S = 1260.0
