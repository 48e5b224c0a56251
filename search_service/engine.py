"""The engine contract: what the web layer, the CLI and library users may ask of a search backend.

One protocol, each engine a module behind it (as django-haystack's
backends are): :func:`open_engine` picks the backend named by
``Config.engine`` (``SEARCH_SERVICE_ENGINE``), importing only that one.
A new backend is a new module and a line in :data:`BACKENDS`; nothing
above this module changes.

Every backend runs the same contract suite (``tests/test_engine_contract.py``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .config import Config, Limits
from .model import CollectionStats, GroupingSummary, Hit, IndexSummary, SearchRequest, SearchResult, StoredStory
from .stories import Story

#: ``progress(total_files, unchanged)`` may return a callback fed counts of files done.
Progress = Callable[[int, int], Callable[[int], None]]

#: Engine name (the part of ``SEARCH_SERVICE_ENGINE`` before ``:`` or ``+``) -> module with ``open(config, create)``.
BACKENDS = {
    "whoosh": "search_service.backends.whoosh",
    "xapian": "search_service.backends.xapian",
}


class UnknownEngineError(ValueError):
    """``SEARCH_SERVICE_ENGINE`` names no backend."""


@runtime_checkable
class Engine(Protocol):
    """A searchable, writable collection of stories.  Implementations are thread-safe."""

    limits: Limits

    def search(self, request: SearchRequest) -> SearchResult:
        """One page of ranked hits; raises :class:`~.model.QueryError` for what the user must change."""

    def story(self, story_id: str) -> StoredStory | None:
        """The stored story with this id, or None."""

    def related(self, story_id: str, limit: int = 10) -> list[Hit] | None:
        """Stories most like this one (never itself); None for an unknown id."""

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Completions of the last word of ``prefix``, most common first."""

    def highlight_terms(self, q: str) -> dict[str, frozenset[str]]:
        """The analyzed terms ``q`` would mark, per text field (for a story opened from results)."""

    def stats(self) -> CollectionStats:
        """Size and date range of the collection."""

    def upsert(self, stories: Sequence[Story]) -> IndexSummary:
        """Add or replace stories by id; visible to every reader when this returns."""

    def delete(self, story_id: str) -> bool:
        """Delete one story; False if there was none.  Visible to every reader when this returns."""

    def index_files(
        self, paths: Sequence[str | os.PathLike[str]], *, procs: int | None = None, progress: Progress | None = None
    ) -> IndexSummary:
        """Index story files and folders, incrementally (unchanged files are not read again)."""

    def close(self) -> None:
        """Release files and connections."""


@runtime_checkable
class Regrouping(Protocol):
    """An engine whose stories may be written apart (shards indexed each on its own) and grouped afterwards."""

    def regroup(self) -> GroupingSummary:
        """Group near-duplicate versions that were written without seeing one another (every shard must answer)."""


def engine_name(config: Config) -> str:
    """The backend ``config.engine`` names: ``whoosh`` or e.g. ``xapian`` for ``xapian+tcp://…``."""
    for sep in ("+", ":"):
        if sep in config.engine:
            return config.engine.split(sep, 1)[0]
    return config.engine


def open_engine(config: Config, create: bool = False) -> Engine:
    """The engine ``config`` names; ``create`` makes an empty collection where there is none.

    Raises :class:`FileNotFoundError` (no index, without ``create``) with a
    message saying how to build one, and :class:`UnknownEngineError`.
    """
    name = engine_name(config)
    if name not in BACKENDS:
        raise UnknownEngineError(
            f"SEARCH_SERVICE_ENGINE={config.engine!r} names no engine; use one of: {', '.join(BACKENDS)}"
        )
    module = importlib.import_module(BACKENDS[name])
    engine: Engine = module.open(config, create)
    return engine


__all__ = ["BACKENDS", "Engine", "Progress", "Regrouping", "UnknownEngineError", "engine_name", "open_engine"]
