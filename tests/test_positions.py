"""Decoding Whoosh's stored positions in bulk gives exactly what Whoosh's own decoder gives."""

from __future__ import annotations

import random

import pytest
from whoosh.formats import Positions

from search_service.positions import decode


def position_lists(seed: int) -> list[list[int]]:
    """Short and long lists; gaps under 256 (the fast path) and over (pickle's other opcodes)."""
    rnd = random.Random(seed)
    lists = [[0], [255], [256], [0, 75, 331], [7, 7, 7], list(range(0, 3000, 2)), list(range(0, 1001 * 300, 300))]
    for _ in range(500):
        n = rnd.choice([1, 2, 3, 8, 40, 999, 1000, 1001])
        spread = rnd.choice([3, 200, 100_000])
        lists.append(sorted(rnd.randrange(spread * n) for _ in range(n)))
    return lists


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decode_matches_whoosh(seed: int) -> None:
    fmt = Positions()
    lists = position_lists(seed)
    values = [fmt.encode(positions) for positions in lists]
    values = [v[:-1] if n % 2 else v for n, v in enumerate(values)]  # with and without pickle's final "."
    assert all(fmt.decode_positions(v) == positions for v, positions in zip(values, lists))
    starts, flat = decode(values)
    assert len(starts) == len(lists) + 1
    assert [flat[starts[i] : starts[i + 1]].tolist() for i in range(len(lists))] == lists


def test_decode_of_nothing() -> None:
    starts, flat = decode([])
    assert starts.tolist() == [0] and flat.tolist() == []
