"""Configuration from one place: defaults, then environment variables, then explicit values.

Environment variables (all optional):

``SEARCH_SERVICE_ENGINE``      the search engine: ``whoosh`` (default, the embedded index in
                               ``SEARCH_SERVICE_INDEX``), ``xapian:/path/to/db`` (one Xapian database)
                               or ``xapian+tcp://host1:port|replica:port,host2:port`` (shards served
                               by xapian-tcpsrv; docs/scale-out.md)
``SEARCH_SERVICE_PARTIAL``     ``off``: a search with a shard that does not answer is a 503, not
                               the other shards' results flagged as partial (default ``on``)
``SEARCH_SERVICE_INDEX``       index folder (default ``index_data/index``)
``SEARCH_SERVICE_STORIES``     stories to index on first start of ``serve`` (default ``index_data``)
``SEARCH_SERVICE_TOKEN``       bearer token for the write API; unset means writes are off
``SEARCH_SERVICE_RATE_LIMIT``  per-client limit (for IPv6, per /64) on ``/api`` and the pages together, e.g. ``600/minute``; ``off`` disables it
``SEARCH_SERVICE_WRITE_TIMEOUT`` seconds a write waits for the index lock before a 503 (default 30)
``SEARCH_SERVICE_MAX_REQUEST_BYTES``  largest request body accepted (default 8 MiB); larger is a 413
``SEARCH_SERVICE_TRUSTED_PROXY`` address of the reverse proxy in front, whose ``X-Forwarded-*``
                               headers name the client (rate limits, logs); unset: they are ignored
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_INDEX = Path("index_data") / "index"
DEFAULT_STORIES = Path("index_data")
#: Threads per worker process.  Searching is CPU-bound Python: a second
#: thread lets one request proceed while another waits on a slow client or a
#: long query; more only contend for the GIL (bench, 2 workers at ~400 req/s:
#: p99 18 ms with 1 thread, 25-28 ms with 2, 38-71 ms with 4).
DEFAULT_THREADS = 2


class ConfigError(ValueError):
    """An environment variable has a value the service can't use; the message names it."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may cost; breaking one is a 400 with a message."""

    max_query_chars: int = 4000  # a pasted paragraph-long question must work
    max_terms: int = 400
    max_expansions: int = 200
    max_per_page: int = 100
    max_depth: int = 10_000
    time_limit: float = 2.0


@dataclass(frozen=True)
class Config:
    """Everything the service needs to know; see the module docstring for the environment."""

    engine: str = "whoosh"
    index_dir: Path = DEFAULT_INDEX
    stories_dir: Path | None = DEFAULT_STORIES
    token: str | None = None
    rate_limit: str | None = "600/minute"
    max_request_bytes: int = 8 * 1024 * 1024
    write_timeout: float = 30.0
    trusted_proxy: str | None = None
    #: Answer from the shards that respond when one does not (flagged in the result); False: 503.
    partial: bool = True
    #: ``I/N``: index only the stories of shard I of N (engines with shards; the CLI's ``--shard``).
    shard: str | None = None
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, overridden by the environment, overridden by ``overrides`` that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("SEARCH_SERVICE_ENGINE"):
            values["engine"] = env["SEARCH_SERVICE_ENGINE"].strip()
        if env.get("SEARCH_SERVICE_INDEX"):
            values["index_dir"] = Path(env["SEARCH_SERVICE_INDEX"])
        if env.get("SEARCH_SERVICE_STORIES"):
            values["stories_dir"] = Path(env["SEARCH_SERVICE_STORIES"])
        if env.get("SEARCH_SERVICE_TOKEN"):
            values["token"] = env["SEARCH_SERVICE_TOKEN"]
        if env.get("SEARCH_SERVICE_RATE_LIMIT"):
            limit = env["SEARCH_SERVICE_RATE_LIMIT"]
            values["rate_limit"] = None if limit.lower() in ("off", "none", "0") else limit
        if env.get("SEARCH_SERVICE_MAX_REQUEST_BYTES"):
            values["max_request_bytes"] = _number(env, "SEARCH_SERVICE_MAX_REQUEST_BYTES", int)
        if env.get("SEARCH_SERVICE_TRUSTED_PROXY"):
            values["trusted_proxy"] = env["SEARCH_SERVICE_TRUSTED_PROXY"]
        if env.get("SEARCH_SERVICE_PARTIAL"):
            values["partial"] = _switch(env, "SEARCH_SERVICE_PARTIAL")
        if env.get("SEARCH_SERVICE_WRITE_TIMEOUT"):
            values["write_timeout"] = _number(env, "SEARCH_SERVICE_WRITE_TIMEOUT", float)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _switch(env: Any, name: str) -> bool:
    """``on``/``off`` (or yes/no, true/false, 1/0) in ``env[name]``, or a :class:`ConfigError` naming the variable."""
    raw = env[name].strip().lower()
    if raw in ("on", "yes", "true", "1"):
        return True
    if raw in ("off", "no", "false", "0"):
        return False
    raise ConfigError(f"{name} must be on or off, not {env[name].strip()!r}")


def _number(env: Any, name: str, kind: type[int] | type[float]) -> Any:
    """The positive number in ``env[name]``, or a :class:`ConfigError` that names the variable."""
    raw = env[name].strip()
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} above 0, not {raw!r}")
    return value
