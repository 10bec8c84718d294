"""The long-running processes' GC policy: start-up heap frozen, thresholds raised."""

from __future__ import annotations

import gc

from flowerhub.gcpolicy import GEN1, GEN2, MIN_GEN0, quiet_gc


def test_quiet_gc_freezes_the_heap_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        quiet_gc()
        assert gc.get_freeze_count() > 0
        gen0, gen1, gen2 = gc.get_threshold()
        assert gen0 >= MIN_GEN0
        assert (gen1, gen2) == (GEN1, GEN2)
        assert gc.isenabled()  # cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
