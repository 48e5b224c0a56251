"""The embedded engine: a Whoosh index in one folder, ranked with BM25F over NumPy arrays.

Modules, in the order they depend on each other: :mod:`.internals` (every
use of Whoosh's private API), :mod:`.schema`, :mod:`.indexer`,
:mod:`.query`, :mod:`.postings`,
:mod:`.corpus`, :mod:`.evaluation`, :mod:`.engine`.
"""

from __future__ import annotations

from ...config import Config
from .engine import WhooshEngine


def open(config: Config, create: bool = False) -> WhooshEngine:
    """The engine over ``config.index_dir`` (see :func:`search_service.engine.open_engine`)."""
    return WhooshEngine(
        config.index_dir, config.limits, create=create, write_timeout=config.write_timeout, cache_mb=config.cache_mb
    )


__all__ = ["WhooshEngine", "open"]
