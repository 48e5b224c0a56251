"""Numbered batches of data in a Xapian database's metadata, merged as a binary counter merges.

The manifest of files read (:mod:`.indexer`) and the spelling words
(:mod:`.words`) are written a batch per commit, each under its own
metadata key (``<key>_<number>``), the batches' numbers and sizes under
``<key>``: a commit writes its own batch, not everything written so far.
After a batch is added, while the newest batch is at least as large as the
one before it, the two are merged into one (the caller says how), so a
database keeps about ``log2`` of its commits' batches and each entry is
rewritten about ``log2`` times, where merging every batch past a fixed
count rewrote everything every few commits.  A merged batch takes a new
number, so a reader that cached a batch by number never sees it change.
"""

from __future__ import annotations

from collections.abc import Callable

import xapian

#: Merge two batches' data (older first) into one.
Merge = Callable[[bytes, bytes], bytes]


def numbered(db: xapian.Database, key: str) -> list[tuple[int, int]]:
    """The batches under ``key``, oldest first: (number, size); a size not recorded is 0."""
    out = []
    for item in db.get_metadata(key).decode().split():
        number, _, size = item.partition(":")
        out.append((int(number), int(size or 0)))
    return out


def read(db: xapian.Database, key: str, number: int) -> bytes:
    """The data of batch ``number`` under ``key`` (empty if there is none)."""
    blob: bytes = db.get_metadata(f"{key}_{number}")
    return blob


def add(db: xapian.WritableDatabase, key: str, blob: bytes, size: int, merge: Merge) -> None:
    """Add a batch of ``size`` entries under ``key`` (with the caller's next commit), merging as described above.

    A size counts what the batch was made from (files, stories), so a
    merged batch's is the sum of its two.
    """
    batches = numbered(db, key)
    number = max((n for n, _ in batches), default=0) + 1
    while batches and batches[-1][1] <= size:
        older, older_size = batches.pop()
        blob, size = merge(read(db, key, older), blob), size + older_size
        db.set_metadata(f"{key}_{older}", "")
    db.set_metadata(f"{key}_{number}", blob)
    db.set_metadata(key, " ".join(f"{n}:{s}" for n, s in [*batches, (number, size)]))


__all__ = ["Merge", "add", "numbered", "read"]
