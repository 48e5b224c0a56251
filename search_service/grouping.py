"""Which near-duplicate group a story joins when it is written, for an engine that finds its candidates.

Engine-neutral: the engine finds the stories sharing an LSH band hash with
the new one (:func:`search_service.duplicates.band_hashes`) and says, for
each, its signature and its group's label; :func:`join` decides.  The new
story's versions are the candidates whose signatures agree with its own on
at least :data:`~search_service.duplicates.THRESHOLD` of their places.

Groups are transitive: a story that matches stories of two groups joins
them into one (the groups' stories take the first label, in sorted
order), and ungrouped stories it matches join too.  A label is made once,
when a group is founded (:func:`new_label`), and never reused, so a story
that leaves its group (rewritten, deleted) can't bring another group's
stories into it later.

:func:`regroup` settles the groups of stories written without seeing one
another (shards indexed apart) as if each had been written after the
others.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from .duplicates import PERMUTATIONS, THRESHOLD, similarity


@dataclass(frozen=True)
class Candidate:
    """A story sharing a band hash with the new one: its signature and its group's label (None: no group)."""

    id: str
    signature: np.ndarray
    label: str | None


@dataclass(frozen=True)
class Joined:
    """What writing a story does to the groups.

    ``label`` is the new story's group (None: it has no versions); the
    stories of the groups labelled ``merged`` and the ungrouped stories
    ``adopted`` take ``label`` too.
    """

    label: str | None
    merged: tuple[str, ...] = ()
    adopted: tuple[str, ...] = field(default=())


def new_label() -> str:
    """A label no group has had."""
    return uuid.uuid4().hex


def join(story_id: str, signature: np.ndarray | None, candidates: Iterable[Candidate]) -> Joined:
    """The group of the story ``story_id`` with ``signature`` (None: too short to group), among ``candidates``."""
    if signature is None:
        return Joined(None)
    versions = [c for c in candidates if c.id != story_id and similarity(signature, c.signature) >= THRESHOLD]
    if not versions:
        return Joined(None)
    labels = sorted({c.label for c in versions if c.label is not None})
    label = labels[0] if labels else new_label()
    return Joined(label, tuple(labels[1:]), tuple(sorted(c.id for c in versions if c.label is None)))


_T = TypeVar("_T", bound=Hashable)


class UnionFind(Generic[_T]):
    """Disjoint sets (union-find with path halving); each set's root is its smallest member by ``key``."""

    def __init__(self, key: Callable[[_T], Any] = lambda x: x) -> None:
        self.parent: dict[_T, _T] = {}
        self._key = key

    def find(self, x: _T) -> _T:
        """The root of ``x``'s set (``x`` alone, if it is new)."""
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: _T, b: _T) -> None:
        """Join the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = sorted((ra, rb), key=self._key)
            self.parent[drop] = keep


def regroup(stories: Mapping[str, Candidate], shared: Iterable[Iterable[str]]) -> dict[str, str]:
    """The stories whose label changes when every story joins its versions among ``stories``: id -> new label.

    ``shared`` lists the ids that share each band hash (the candidates,
    as :func:`join` gets them); two are versions when their signatures
    agree on :data:`~search_service.duplicates.THRESHOLD` of their places.
    Stories that share a label stay together, so ``stories`` must hold
    every story of each label it has.  As :func:`join` makes them, groups
    are transitive and each takes the first of its labels in sorted order,
    or a new one.
    """
    sets: UnionFind[str] = UnionFind()
    for ids in shared:
        found = sorted(i for i in set(ids) if i in stories)
        if len(found) < 2:
            continue
        signatures = np.stack([stories[i].signature for i in found])
        for n in range(len(found) - 1):
            agree = (signatures[n + 1 :] == signatures[n]).sum(axis=1)
            for other in np.flatnonzero(agree / PERMUTATIONS >= THRESHOLD).tolist():
                sets.union(found[n], found[n + 1 + other])
    first: dict[str, str] = {}
    for story in stories.values():
        if story.label is not None:
            sets.union(story.id, first.setdefault(story.label, story.id))
    groups: dict[str, list[str]] = {}
    for story_id in stories:
        groups.setdefault(sets.find(story_id), []).append(story_id)
    changes = {}
    for ids in groups.values():
        if len(ids) > 1:
            labels = sorted({label for i in ids if (label := stories[i].label) is not None})
            label = labels[0] if labels else new_label()
            changes.update({i: label for i in ids if stories[i].label != label})
    return changes


__all__ = ["Candidate", "Joined", "UnionFind", "join", "new_label", "regroup"]
