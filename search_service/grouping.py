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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .duplicates import THRESHOLD, similarity


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


__all__ = ["Candidate", "Joined", "join", "new_label"]
