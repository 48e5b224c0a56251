"""Free text over blocks of stories: block maxima for the top hits, a sample of blocks for the totals.

The stories of a commit are cut into blocks of :data:`BLOCK` consecutive
document numbers.  A free-text word in a commit
(:class:`WordBlocks`, kept in the postings cache until the next commit)
has the best of its BM25F scores in each block.  A
story's score for several words is at most the sum of their block maxima
(times the bonus for matching as many words as have the block), so the
top hits are found by scoring the blocks in the order of that bound and
stopping when the next block's bound is below the ``depth``-th best score
found (block-max pruning, as Ding and Suel's block-max WAND, here over
arrays a batch of blocks at a time).  On a million stories, two common
words are scored in a few percent of their stories.

Counting every story found would still take a pass over them all: from
:data:`ESTIMATE_FROM` stories with a word, the total and the facets are
estimated from one block in :data:`SAMPLE_EVERY` (the matches there,
after dates and near-duplicates, scaled by the live stories in all blocks
over those in the sample) and shown as "about N", rounded to three
significant digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Consecutive stories in a block (64: two common words scored in 1-2% of their stories on
#: 300,000; 256: 10%; 1,024: 57%).
BLOCK = 64
#: Free text with a word in at least this many stories has its total and facets estimated.
ESTIMATE_FROM = 100_000
#: The estimate counts the matches in one block of this many (some 6% of the stories).
SAMPLE_EVERY = 16
#: A block's maximum is raised by this share, so rounding never lets a sum of scores pass it.
_MARGIN = 1e-9
#: What a kept word costs beyond its arrays.
_ENTRY_BYTES = 600


@dataclass
class WordBlocks:
    """One free-text word in one commit: how many live stories have it, the blocks it is in
    (ascending) and (a hair above) its best score in each: 8 bytes a block, kept in the postings
    cache until the next commit.

    Its stories and frequencies are not kept with them: those of the blocks
    a query scores are gathered from the segments' cached postings
    (:meth:`.JoinedPostings.within`), so a word's postings are held once,
    and computed again element by element as they were: to the last bit the same.
    """

    with_word: int
    blocks: np.ndarray
    maxima: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray, scores: np.ndarray) -> WordBlocks:
        """The blocks of the live stories ``ids`` (ascending) and their best ``scores`` there."""
        blocks, _, maxima = _blocked(ids, scores)
        return cls(len(ids), blocks, maxima)

    @property
    def nbytes(self) -> int:
        return self.blocks.nbytes + self.maxima.nbytes + _ENTRY_BYTES


@dataclass
class ScoredStories:
    """The stories a phrase evaluated whole matches (ascending), their scores, and its blocks, where
    its stories in each start (and, last, their number) and (a hair above) its best score there."""

    ids: np.ndarray
    scores: np.ndarray
    blocks: np.ndarray
    starts: np.ndarray
    maxima: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray, scores: np.ndarray) -> ScoredStories:
        blocks, starts, maxima = _blocked(ids, scores)
        return cls(ids, scores, blocks, starts, maxima)

    def in_blocks(self, blocks: np.ndarray) -> np.ndarray:
        """Where the stories in ``blocks`` (ascending) are in :attr:`ids`, ascending."""
        if not len(self.blocks):
            return np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self.blocks, blocks)
        at[at == len(self.blocks)] = 0
        at = at[self.blocks[at] == blocks]
        return ranges(self.starts[at], self.starts[at + 1])


def _blocked(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of ``ids`` (ascending), where their stories start in ``ids`` (and, last, their
    number), and the best of ``scores`` in each, rounded up to float32 a hair above."""
    block_of = ids // BLOCK
    first = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]]) if len(ids) else np.zeros(0, dtype=np.int64)
    maxima = np.maximum.reduceat(scores, first) if len(ids) else np.zeros(0)
    return (
        block_of[first].astype(np.int32),
        np.append(first, len(ids)).astype(np.int32),
        _above(maxima * (1.0 + _MARGIN)),
    )


def block_ranges(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The document numbers of ``blocks``: ``[lows[i], highs[i])``."""
    lows = blocks.astype(np.int64) * BLOCK
    return lows, lows + BLOCK


def _above(values: np.ndarray) -> np.ndarray:
    """``values`` as float32, each rounded up."""
    narrow = values.astype(np.float32)
    low = narrow < values
    narrow[low] = np.nextafter(narrow[low], np.float32(np.inf))
    return narrow


def block_count(size: int) -> int:
    """Blocks of a commit of ``size`` documents."""
    return (size + BLOCK - 1) // BLOCK


def sample_blocks(size: int) -> np.ndarray:
    """The blocks the estimates count in."""
    return np.arange(0, block_count(size), SAMPLE_EVERY)


def sample_share(alive: np.ndarray) -> float:
    """Live stories over those in the sample's blocks: what counts in the sample are multiplied by."""
    blocks = sample_blocks(len(alive))
    sampled = int(alive[ranges(blocks * BLOCK, np.minimum((blocks + 1) * BLOCK, len(alive)))].sum())
    return int(alive.sum()) / sampled if sampled else 1.0


def about(count: float) -> int:
    """An estimated count rounded to three significant digits (at least 1 for anything found)."""
    if count <= 0:
        return 0
    digits = max(0, math.floor(math.log10(count)) - 2)
    return max(1, round(count / 10**digits) * 10**digits)


def ranges(lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """The integers of the ranges ``[lows[i], highs[i])`` (ascending, disjoint), in order, as one array."""
    lengths = (highs - lows).astype(np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(lows.astype(np.int64) - (ends - lengths), lengths) + np.arange(total)


__all__ = [
    "BLOCK",
    "ESTIMATE_FROM",
    "SAMPLE_EVERY",
    "ScoredStories",
    "WordBlocks",
    "about",
    "block_count",
    "block_ranges",
    "ranges",
    "sample_blocks",
    "sample_share",
]
