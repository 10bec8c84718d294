"""``analytics.audit.window.hash_positions``: the sites' rows found by their hash (a direct
table over a window of the hash's bits, a binary search when no window separates them)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.audit.window import hash_positions


@settings(max_examples=50, deadline=None)
@given(
    keys=st.sets(st.integers(0, 2**64 - 1), min_size=1, max_size=300),
    picks=st.lists(st.integers(0, 10_000), max_size=200),
)
def test_hash_positions_find_every_site(keys: set[int], picks: list[int]) -> None:
    """The direct table and the binary search agree; a hash not among the sites is caught
    by the caller's check (its position holds another hash)."""
    hashes = np.array(sorted(keys), dtype=np.uint64)
    rng = np.random.default_rng(len(picks))
    rng.shuffle(hashes)
    h = hashes[[p % hashes.size for p in picks]]
    assert (hashes[hash_positions(hashes, h)] == h).all()
    stranger = np.array([next(x for x in range(2**64 - 1, 0, -1) if x not in keys)], np.uint64)
    assert hashes[hash_positions(hashes, stranger)][0] != stranger[0]


def test_hash_positions_fall_back_when_no_bit_window_separates_the_sites() -> None:
    """Two pairs, one differing in bit 0 only, one in bit 30 only: every 20-bit window
    holds a pair in one slot, so the binary search finds them."""
    x, y = 0x0123456789ABCDEF, 0x0FEDCBA987654321
    hashes = np.array([x, x ^ 1, y, y ^ (1 << 30)], dtype=np.uint64)
    h = hashes[[3, 1, 2, 0, 1]]
    assert (hashes[hash_positions(hashes, h)] == h).all()
