"""Xapian: one database on this machine, or shards served by ``xapian-tcpsrv`` searched as one.

Modules, in the order they depend on each other: :mod:`.document` (story ->
terms, values and data), :mod:`.shards` (where the databases are, failover),
:mod:`.query` (the Whoosh engine's syntax as Xapian queries),
:mod:`.indexer`, :mod:`.engine`.  Install with ``pip install
'search_service[xapian]'``; ``docs/scale-out.md`` describes running shards.
"""

from __future__ import annotations

from ...config import Config, ConfigError
from .engine import XapianEngine
from .shards import Cluster, Local, parse_shard, topology


def open(config: Config, create: bool = False) -> XapianEngine:
    """The engine ``config.engine`` names (see :mod:`.shards` for the forms it takes)."""
    topo = topology(config)
    try:
        shard = parse_shard(config.shard) if config.shard else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if topo.path is not None:
        store: Local | Cluster = Local(topo.path, create)
    else:
        store = Cluster(topo, config.limits.time_limit)
    return XapianEngine(store, config.limits, write_timeout=config.write_timeout, partial=config.partial, shard=shard)


__all__ = ["XapianEngine", "open"]
