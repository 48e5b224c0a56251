"""Decoding the word positions Whoosh stores with each posting, many postings at a time.

Whoosh's ``Positions`` format stores a posting's positions as a 4-byte
big-endian count and the pickled list (protocol 2) of the gaps between them;
decoding them with ``pickle.loads``, one posting at a time, was most of the
time of a phrase query on words not yet in the postings cache.

Gaps under 256 pickle as two bytes each (``K`` and the gap) between a fixed
header and end, so a posting whose length is exactly that of its count of
such gaps holds only them, at known offsets: those (nearly all postings in
news text) are read straight out of the joined bytes with NumPy.  Any other
posting (a gap of 256 or more, or over a thousand positions, which pickle
splits into batches) goes through ``pickle.loads``.
"""

from __future__ import annotations

import pickle

import numpy as np

_K = ord("K")  # pickle's BININT1: an int from 0 to 255 in the next byte
_STOP = ord(".")


def decode(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, flat)``: the positions of posting ``i`` are ``flat[starts[i]:starts[i + 1]]``."""
    buf = np.frombuffer(b"".join(values) + b"\0\0\0\0", dtype=np.uint8)
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    begins = np.zeros(len(values), dtype=np.int64)
    np.cumsum(sizes[:-1], out=begins[1:])
    header = buf[begins[:, None] + np.arange(4)].astype(np.int64)
    counts = np.where(sizes >= 4, (header[:, 0] << 24) | (header[:, 1] << 16) | (header[:, 2] << 8) | header[:, 3], 0)
    starts = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    gaps = np.zeros(int(starts[-1]), dtype=np.int64)

    # b"\x00\x00\x00\x03" b"\x80\x02]q\x00" b"(" b"K\x01K\x02K\x06" b"e" [b"."], or for one
    # position b"\x00\x00\x00\x01" b"\x80\x02]q\x00" b"K\x05" b"a" [b"."].
    first_gap = np.where(counts == 1, 10, 11)
    ends_in_stop = buf[np.maximum(begins + sizes - 1, 0)] == _STOP
    small = np.flatnonzero((counts > 0) & (sizes == first_gap + 2 * counts + ends_in_stop))
    n = counts[small]
    nth = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # each gap's place in its posting
    at = np.repeat(begins[small] + first_gap[small], n) + 2 * nth
    gaps[np.repeat(starts[small], n) + nth] = buf[at]
    other = np.ones(len(values), dtype=bool)
    other[small] = False
    other[np.repeat(small, n)[buf[at - 1] != _K]] = True  # the right length by chance: not all K
    for i in np.flatnonzero(other & (counts > 0)).tolist():
        value = values[i]
        gaps[starts[i] : starts[i + 1]] = pickle.loads(value[4:] if value.endswith(b".") else value[4:] + b".")
    running = np.cumsum(gaps)
    before = np.concatenate(([0], running))[starts[:-1]]
    return starts, running - np.repeat(before, counts)
