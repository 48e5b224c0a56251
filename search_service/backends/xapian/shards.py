"""Where the stories are: one local database, or shards served by ``xapian-tcpsrv``, and their replicas.

``SEARCH_SERVICE_ENGINE`` names them:

* ``xapian`` or ``xapian:/path/to/db``: one database on this machine (``xapian``
  alone uses ``SEARCH_SERVICE_INDEX``);
* ``xapian+tcp://host1:port,host2:port,host3:port``: shard 1, 2 and 3, in that
  order (the order routes writes: shard ``I`` holds the stories whose id
  hashes to ``I``, :func:`shard_of`).  A shard may list copies,
  ``host1a:port|host1b:port``: the first that answers is searched; writes go to
  the first listed, its primary (``xapian-tcpsrv --writable``).

:class:`Cluster` keeps, per thread, one connection per shard and one
``xapian.Database`` over them all, which Xapian searches as one database
(term statistics are summed over the shards, so scores equal a single
database's).  A copy that does not answer within the timeout is skipped; a
shard none of whose copies answers is left out and counted as failed, and
looked for again after :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import xapian

from ...config import Config, ConfigError
from ...model import EngineUnavailable

log = logging.getLogger(__name__)

#: A shard that did not answer is tried again after this many seconds (per thread).
RETRY_SECONDS = 5.0
#: Database metadata naming the shard a database holds, as ``I/N``.
SHARD_KEY = "search_service_shard"


@dataclass(frozen=True)
class Copy:
    """One ``xapian-tcpsrv`` serving a copy of a shard."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """A local database (``path``) or remote shards, each a tuple of copies (primary first)."""

    path: Path | None = None
    shards: tuple[tuple[Copy, ...], ...] = ()


def topology(config: Config) -> Topology:
    """The databases ``config.engine`` names; :class:`ConfigError` for one it can't use."""
    spec = config.engine
    if spec == "xapian":
        return Topology(path=Path(config.index_dir))
    if spec.startswith("xapian:") and not spec.startswith("xapian:/" + "/"):
        return Topology(path=Path(spec[len("xapian:") :]))
    if not spec.startswith("xapian+tcp://"):
        raise ConfigError(f"SEARCH_SERVICE_ENGINE={spec!r}: use xapian:/path/to/db or xapian+tcp://host:port,host:port")
    shards = []
    for part in spec[len("xapian+tcp://") :].strip("/").split(","):
        shards.append(tuple(_copy(address.strip(), spec) for address in part.split("|")))
    return Topology(shards=tuple(shards))


def _copy(address: str, spec: str) -> Copy:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"SEARCH_SERVICE_ENGINE={spec!r}: {address!r} is not host:port")
    return Copy(host.strip("[]"), int(port))


def shard_of(story_id: str, count: int) -> int:
    """The shard (0-based) of a story: CRC-32 of its id modulo the number of shards, stable everywhere."""
    return zlib.crc32(story_id.encode("utf-8")) % count


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1 <= I <= N) as (I-1, N); :class:`ValueError` with a message otherwise."""
    number, _, count = text.partition("/")
    if not (number.isdigit() and count.isdigit() and 1 <= int(number) <= int(count)):
        raise ValueError(f"--shard must be I/N with 1 <= I <= N, as in 2/3, not {text!r}")
    return int(number) - 1, int(count)


@dataclass
class _Shard:
    db: xapian.Database | None = None
    retry_at: float = 0.0


@dataclass
class View:
    """One thread's databases: ``db`` searches every shard that answered; ``failed`` counts the others."""

    db: xapian.Database
    total: int
    failed: int = 0
    shards: list[_Shard] = field(default_factory=list)


class Local:
    """One database in a folder: a reader per thread, reopened at its latest commit on every call."""

    remote = False
    count = 1

    def __init__(self, path: Path, create: bool) -> None:
        self.path = path
        if create:
            path.mkdir(parents=True, exist_ok=True)
            xapian.WritableDatabase(str(path), xapian.DB_CREATE_OR_OPEN).close()
        elif not _is_database(path):
            raise FileNotFoundError(
                f"no Xapian database in {path}; build it with `search-service index PATH --engine xapian:{path}`"
            )
        self._local = threading.local()

    def view(self) -> View:
        db: xapian.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = xapian.Database(str(self.path))
        else:
            db.reopen()
        return View(db, 1)

    def drop(self, view: View) -> None:
        self._local.db = None

    def writable(self, n: int) -> xapian.WritableDatabase:
        return xapian.WritableDatabase(str(self.path), xapian.DB_CREATE_OR_OPEN)


def _is_database(path: Path) -> bool:
    try:
        xapian.Database(str(path)).close()
    except xapian.DatabaseOpeningError:
        return False
    return True


class Cluster:
    """Per-thread connections to the shards (see the module docstring)."""

    remote = True

    def __init__(self, topo: Topology, timeout: float) -> None:
        self.topology = topo
        self.count = len(topo.shards)
        self.timeout_ms = max(1, int(timeout * 1000))
        self._local = threading.local()

    def view(self) -> View:
        """This thread's databases, reopened at their latest commit (a write anywhere is seen)."""
        shards: list[_Shard] | None = getattr(self._local, "shards", None)
        if shards is None:
            shards = self._local.shards = [_Shard() for _ in self.topology.shards]
        now = time.monotonic()
        combined = xapian.Database()
        failed = 0
        for n, shard in enumerate(shards):
            if shard.db is not None:
                try:
                    shard.db.reopen()
                except xapian.Error:
                    shard.db = None
            if shard.db is None and now >= shard.retry_at:
                shard.db = self._connect(n)
                if shard.db is None:
                    shard.retry_at = now + RETRY_SECONDS
            if shard.db is None:
                failed += 1
            else:
                combined.add_database(shard.db)
        return View(combined, len(shards), failed, shards)

    def drop(self, view: View) -> None:
        """Forget the connections of ``view`` that no longer answer (after a network error)."""
        for shard in view.shards:
            if shard.db is not None:
                try:
                    shard.db.reopen()
                    shard.db.get_doccount()
                except xapian.Error:
                    shard.db = None
                    shard.retry_at = 0.0

    def _connect(self, n: int) -> xapian.Database | None:
        """The first copy of shard ``n`` that answers, or None."""
        count = len(self.topology.shards)
        for copy in self.topology.shards[n]:
            try:
                db = xapian.remote_open(copy.host, copy.port, self.timeout_ms, self.timeout_ms)
                claimed = db.get_metadata(SHARD_KEY).decode()
            except xapian.Error as exc:
                log.warning("shard %d/%d: %s does not answer (%s)", n + 1, count, copy, exc.get_msg())
                continue
            if claimed and claimed != f"{n + 1}/{count}":
                log.error("shard %d/%d: %s serves shard %s; not searched", n + 1, count, copy, claimed)
                continue
            return db
        return None

    def writable(self, n: int) -> xapian.WritableDatabase:
        """A writable connection to shard ``n``'s primary; :class:`EngineUnavailable` if it does not answer."""
        primary = self.topology.shards[n][0]
        try:
            return xapian.remote_open_writable(primary.host, primary.port, self.timeout_ms, self.timeout_ms)
        except xapian.DatabaseLockError:
            raise
        except xapian.Error as exc:
            raise EngineUnavailable(
                f"shard {n + 1} of {len(self.topology.shards)} ({primary}) can't be written: {exc.get_msg()}"
            ) from None
