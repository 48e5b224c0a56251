"""search_service: full-text search for archives of news stories.

The library is usable without the CLI or the web app::

    from search_service import Config, SearchRequest, open_engine

    engine = open_engine(Config(index_dir="/tmp/index"), create=True)
    print(engine.index_files(["index_data"]).line())
    print(engine.search(SearchRequest(q="drought")).total)

Everything public is named here; backends live in :mod:`search_service.backends`.
"""

from .config import Config, ConfigError, Limits
from .engine import Engine, UnknownEngineError, open_engine
from .model import (
    SORTS,
    CollectionStats,
    Hit,
    IndexBusyError,
    IndexSummary,
    IndexWriteError,
    QueryError,
    QueryTimeout,
    SearchRequest,
    SearchResult,
    StoredStory,
)
from .stories import Skip, Story, StoryError, read_file

__all__ = [
    "SORTS",
    "CollectionStats",
    "Config",
    "ConfigError",
    "Engine",
    "Hit",
    "IndexBusyError",
    "IndexSummary",
    "IndexWriteError",
    "Limits",
    "QueryError",
    "QueryTimeout",
    "SearchRequest",
    "SearchResult",
    "Skip",
    "StoredStory",
    "Story",
    "StoryError",
    "UnknownEngineError",
    "open_engine",
    "read_file",
]
