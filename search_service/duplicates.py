"""Near-duplicate stories: MinHash signatures of word shingles, and LSH band keys.

Two stories are near-duplicates when their bodies share most of their
3-word shingles (Jaccard similarity at least :data:`THRESHOLD`): the same
wire text re-scraped, updated by a sentence, corrected by a figure, or put
under another headline or date.  The shingles are of the analyzer's terms
(:func:`.analysis.term_positions` order, stop words out, stemmed), so
re-wrapping, case and punctuation change nothing.

Each story gets a MinHash signature of :data:`PERMUTATIONS` values (the
probability that two signatures agree at one place is the Jaccard
similarity of the shingle sets), cut into :data:`BANDS` bands; a story's
band keys are what an index looks up to find its candidates, which are then
checked by the share of places where the signatures agree.  With 16 bands
of 4, a pair at Jaccard 0.7 shares a band with probability 0.99, a pair at
0.3 with probability 0.12.

NumPy, not the ``datasketch`` package: the signature is a dozen lines of
array arithmetic, the index stores the band keys itself (so datasketch's
LSH tables would go unused), and the signatures must be identical across
processes and versions (seeded here, hashed with CRC-32, not Python's
per-process ``hash``).
"""

from __future__ import annotations

import zlib

import numpy as np

from .analysis import TOKEN_RE, normalize

SHINGLE = 3
PERMUTATIONS = 64
BANDS = 16
ROWS = PERMUTATIONS // BANDS
#: Estimated Jaccard similarity from which two stories are versions of one story.
THRESHOLD = 0.7
#: Bodies with fewer shingles than this are never grouped (short notices are alike by form, not content).
MIN_SHINGLES = 12

_PRIME = np.uint64((1 << 31) - 1)
_rng = np.random.default_rng(20_240_301)
_A = _rng.integers(1, int(_PRIME), PERMUTATIONS, dtype=np.uint64)[:, None]
_B = _rng.integers(0, int(_PRIME), PERMUTATIONS, dtype=np.uint64)[:, None]
_MIX = (np.uint64(0x9E3779B1), np.uint64(0x85EBCA77), np.uint64(0xC2B2AE3D))
_term_hashes: dict[str, int] = {}


def _term_hash(term: str) -> int:
    found = _term_hashes.get(term)
    if found is None:
        if len(_term_hashes) > 500_000:
            _term_hashes.clear()
        found = _term_hashes[term] = zlib.crc32(term.encode("utf-8"))
    return found


def signature(body: str) -> np.ndarray | None:
    """The MinHash signature (``PERMUTATIONS`` uint32) of ``body``'s shingles; None if too short to compare."""
    terms = [t for t in map(normalize, TOKEN_RE.findall(body)) if t is not None]
    if len(terms) - SHINGLE + 1 < MIN_SHINGLES:
        return None
    h = np.fromiter(map(_term_hash, terms), dtype=np.uint64, count=len(terms))
    shingles = np.zeros(len(terms) - SHINGLE + 1, dtype=np.uint64)
    for i, mix in enumerate(_MIX[:SHINGLE]):
        shingles = (shingles * mix + h[i : len(h) - SHINGLE + 1 + i]) & np.uint64(0xFFFFFFFF)
    shingles = np.unique(shingles) % _PRIME
    return ((_A * shingles + _B) % _PRIME).min(axis=1).astype(np.uint32)


def band_keys(sig: np.ndarray) -> list[str]:
    """The LSH keys of a signature: one per band, naming the band and a hash of its values."""
    return [f"{band:x}.{zlib.crc32(sig[band * ROWS:(band + 1) * ROWS].tobytes()):x}" for band in range(BANDS)]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The estimated Jaccard similarity of two signatures' shingle sets."""
    return float(np.mean(a == b))


__all__ = ["BANDS", "PERMUTATIONS", "THRESHOLD", "band_keys", "signature", "similarity"]
