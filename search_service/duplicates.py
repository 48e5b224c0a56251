"""Near-duplicate stories: MinHash signatures of word shingles, and LSH band hashes.

Two stories are near-duplicates when their bodies share most of their
3-word shingles (Jaccard similarity at least :data:`THRESHOLD`): the same
wire text re-scraped, updated by a sentence, corrected by a figure, or put
under another headline or date.  The shingles are of the analyzer's terms
(:func:`.analysis.term_positions` order, stop words out, stemmed), so
re-wrapping, case and punctuation change nothing.  The signature is made
from the term positions indexing computes for the body anyway: the body is
not read a second time (that second pass made indexing 20% slower).

Each story gets a MinHash signature of :data:`PERMUTATIONS` values (the
probability that two signatures agree at one place is the Jaccard
similarity of the shingle sets), cut into :data:`BANDS` bands; a story's
band hashes are what an index looks up to find its candidates, which are then
checked by the share of places where the signatures agree.  With 16 bands
of 4, a pair at Jaccard 0.7 shares a band with probability 0.99, a pair at
0.3 with probability 0.12.

NumPy, not the ``datasketch`` package: the signature is a dozen lines of
array arithmetic, the index keeps the band hashes itself (so datasketch's
LSH tables would go unused), and the signatures must be identical across
processes and versions (seeded here, hashed with CRC-32, not Python's
per-process ``hash``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from .analysis import is_common

SHINGLE = 3
PERMUTATIONS = 64
BANDS = 16
ROWS = PERMUTATIONS // BANDS
#: Estimated Jaccard similarity from which two stories are versions of one story.
THRESHOLD = 0.7
#: Bodies with fewer shingles than this are never grouped (short notices are alike by form, not content).
MIN_SHINGLES = 12

#: The permutations: multiply-shift hashing, ``(a * x + b) mod 2**64`` keeping the high 32 bits (a odd).
_rng = np.random.default_rng(20_240_301)
_A = (_rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1))[:, None]
_B = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)[:, None]
_HIGH = np.uint64(32)
_MIX = (np.uint64(0x9E3779B1), np.uint64(0x85EBCA77), np.uint64(0xC2B2AE3D))
_BAND_MIX = np.uint64(0x100000001B3)
#: term -> CRC-32 of it, or -1 for a common word (indexed, but no sign of a version)
_term_hashes: dict[str, int] = {}


def _term_hash(term: str) -> int:
    if len(_term_hashes) > 500_000:
        _term_hashes.clear()
    found = _term_hashes[term] = -1 if is_common(term) else zlib.crc32(term.encode("utf-8"))
    return found


def signature(terms: Mapping[str, Sequence[int]]) -> np.ndarray | None:
    """The MinHash signature (``PERMUTATIONS`` uint32) of a body's shingles; None if too short to compare.

    ``terms`` is the body as indexing analyses it (term -> positions, as
    :func:`.analysis.term_positions` gives), so the body is not read twice.
    """
    sequence = [-1] * sum(map(len, terms.values()))  # the body's terms in order, as hashes; -1: a common word
    for term, positions in terms.items():
        found = _term_hashes.get(term)
        if found is None:
            found = _term_hash(term)
        if found >= 0:
            for position in positions:
                sequence[position] = found
    signed = np.array(sequence, dtype=np.int64)
    h = signed[signed >= 0].astype(np.uint64)
    n = len(h) - SHINGLE + 1
    if n < MIN_SHINGLES:
        return None
    shingles = h[:n].copy()  # (((0 * m0 + h0) * m1 + h1) * m2 + h2) mod 2**32, each step wrapping
    for i, mix in enumerate(_MIX[1:SHINGLE], 1):
        shingles *= mix
        shingles += h[i : n + i]
    shingles &= np.uint64(0xFFFFFFFF)
    hashed = _A * shingles
    hashed += _B
    hashed >>= _HIGH
    return hashed.min(axis=1).astype(np.uint32)  # repeats change no minimum


def band_hashes(signatures: np.ndarray) -> np.ndarray:
    """One 64-bit hash per band of each signature (rows of ``signatures``): an ``n x BANDS`` array."""
    rows = signatures.reshape(len(signatures), BANDS, ROWS).astype(np.uint64)
    hashed = np.zeros((len(signatures), BANDS), dtype=np.uint64)
    for r in range(ROWS):
        hashed = hashed * _BAND_MIX + rows[:, :, r]  # wraps modulo 2**64
    return hashed


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The estimated Jaccard similarity of two signatures' shingle sets."""
    return float(np.mean(a == b))


__all__ = ["BANDS", "PERMUTATIONS", "THRESHOLD", "band_hashes", "signature", "similarity"]
