"""``search-service``: a thin command line over the library (index, search, serve)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .config import DEFAULT_THREADS, Config, ConfigError
from .engine import Engine, Regrouping, UnknownEngineError, engine_name, open_engine
from .model import SORTS, EngineUnavailable, IndexBusyError, IndexSummary, IndexWriteError, QueryError, SearchRequest

log = logging.getLogger("search_service")

_INDEX_OPTION = click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Index folder. Default: $SEARCH_SERVICE_INDEX or index_data/index.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail to stderr.")
@click.version_option(package_name="search_service")
def main(verbose: bool) -> None:
    """Full-text search for archives of news stories.

    \b
    Typical use:
      search-service index ~/stories            # build or update the index
      search-service search "oil prices"        # look something up here
      search-service serve --port 8080          # web page and JSON API
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _progress(total: int, unchanged: int) -> Callable[[int], None]:
    """A progress bar on a terminal; nothing otherwise (logs and pipes stay clean)."""
    if not sys.stderr.isatty() or total == 0:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="file", desc="indexing", leave=False, file=sys.stderr)
    return bar.update


def _config(**overrides: Any) -> Config:
    """The configuration (environment, then options); a bad variable is one line naming it."""
    try:
        return Config.from_env(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(config: Config, create: bool = False) -> Engine:
    try:
        return open_engine(config, create=create)
    except (FileNotFoundError, UnknownEngineError, IndexWriteError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


def _run_index(paths: tuple[Path, ...], config: Config, procs: int | None) -> IndexSummary:
    try:
        return _engine(config, create=True).index_files(paths, procs=procs, progress=_progress)
    except (FileNotFoundError, IndexBusyError, IndexWriteError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was committed; the index is as it was before this run", err=True)
        sys.exit(130)


_ENGINE_OPTION = click.option(
    "--engine",
    default=None,
    help="Search engine: whoosh, xapian (in --index), xapian:DIR or xapian+tcp://HOST:PORT,... "
    "Default: $SEARCH_SERVICE_ENGINE or whoosh.",
)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_INDEX_OPTION
@_ENGINE_OPTION
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Index only shard I of N: the stories whose id hashes to I (engines with shards).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any file or line was skipped.")
@click.option(
    "--procs", type=click.IntRange(1, 16), default=None, help="Worker processes (default: one per CPU, at most 4)."
)
def index(
    paths: tuple[Path, ...],
    index_dir: Path | None,
    engine: str | None,
    shard: str | None,
    strict: bool,
    procs: int | None,
) -> None:
    """Index story files (.txt) and JSON Lines (.jsonl) under PATHS.

    Folders are read recursively. Runs are incremental: unchanged files are
    not read again, changed files are re-indexed, and stories whose files
    were removed from an indexed folder are removed. A story code seen twice
    is one story: the later file wins.
    """
    config = _config(index_dir=index_dir, engine=engine, shard=shard)
    if shard and engine_name(config) == "whoosh":
        raise click.ClickException("--shard needs an engine with shards, as in --engine xapian")
    summary = _run_index(paths, config, procs)
    for skip in summary.skips:
        click.echo(f"skipped {skip.where}: {skip.reason}", err=True)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    where = config.engine.split(":", 1)[1] if ":" in config.engine else config.index_dir
    click.echo(f"{where}: {summary.line()}")
    if strict and summary.skips:
        what = "file or line was" if len(summary.skips) == 1 else "files or lines were"
        raise click.ClickException(f"{len(summary.skips)} {what} skipped (--strict)")


@main.command()
@_INDEX_OPTION
@_ENGINE_OPTION
def group(index_dir: Path | None, engine: str | None) -> None:
    """Group near-duplicate versions across shards.

    Run it once after `index --shard I/N` has indexed every shard, with
    --engine naming every shard (xapian+tcp://HOST:PORT,..., each served
    writable): an indexer sees only its own shard, so versions of one story
    on different shards are grouped here. Stories written through the API
    are grouped as they are written.
    """
    config = _config(index_dir=index_dir, engine=engine)
    found = _engine(config)
    if not isinstance(found, Regrouping):
        raise click.ClickException(f"the {engine_name(config)} engine groups versions as it indexes; nothing to do")
    try:
        summary = found.regroup()
    except (EngineUnavailable, IndexBusyError, IndexWriteError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.line())


@main.command()
@click.argument("query")
@_INDEX_OPTION
@_ENGINE_OPTION
@click.option("-n", "--limit", type=click.IntRange(1, 100), default=10, show_default=True, help="Hits to show.")
@click.option("--sort", type=click.Choice(SORTS), default="relevance", show_default=True)
def search(query: str, index_dir: Path | None, engine: str | None, limit: int, sort: str) -> None:
    """Search the index and print the top hits.

    QUERY takes the same syntax as the web search box: words, "phrases",
    AND/OR/NOT, -word, headline:word, published:[2021-01-01 TO 2021-06-30].
    Matches are shown in bold on a terminal.
    """
    config = _config(index_dir=index_dir, engine=engine)
    try:
        result = _engine(config).search(SearchRequest(q=query, per_page=limit, sort=sort))
    except (QueryError, EngineUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    color = sys.stdout.isatty()
    noun = "story matches" if result.total == 1 else "stories match"
    if result.corrected_from is not None:
        click.echo(f"showing results for: {result.query} (no story matches {result.corrected_from})")
    click.echo(f"{result.total:,} {noun} ({result.took_ms:.0f} ms)")
    if result.notice:
        click.echo(result.notice)
    if result.shards and result.shards["failed"]:
        click.echo(f"partial: {result.shards['failed']} of {result.shards['total']} shards did not answer")
    if result.suggestion:
        click.echo(f"did you mean: {result.suggestion}")
    for hit in result.hits:
        date = hit.published.date().isoformat() if hit.published else "undated"
        click.echo(f"\n{_terminal(hit.highlights['headline'], color)}  [{hit.id}, {date}]")
        for fragment in hit.highlights["body"]:
            click.echo(f"  {_terminal(fragment, color)}")


def _terminal(marked_html: str, color: bool) -> str:
    """Highlight HTML to terminal text: <mark> to bold (or nothing), entities unescaped."""
    from html import unescape

    bold, plain = ("\x1b[1m", "\x1b[0m") if color else ("", "")
    return unescape(marked_html.replace("<mark>", bold).replace("</mark>", plain))


@main.command()
@_INDEX_OPTION
@_ENGINE_OPTION
@click.option(
    "--stories",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Stories to index on first start if the index is empty. Default: index_data.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Server processes on one port; one per CPU core uses every core.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=DEFAULT_THREADS,
    show_default=True,
    help="Threads per worker process (searching is CPU-bound: more threads only contend).",
)
def serve(
    index_dir: Path | None, engine: str | None, stories: Path | None, host: str, port: int, workers: int, threads: int
) -> None:
    """Serve the search page and JSON API with waitress.

    If there is no index yet and the stories folder exists, it is indexed
    first. Set SEARCH_SERVICE_TOKEN to turn on the write API.
    """
    from .web.server import ServeError
    from .web.server import serve as serve_forever

    config = _config(index_dir=index_dir, engine=engine, stories_dir=stories)
    try:
        open_engine(config).close()
    except FileNotFoundError:
        if config.stories_dir is None or not config.stories_dir.is_dir():
            raise click.ClickException(
                f"no index in {config.index_dir} and no stories folder to build one from; "
                "run `search-service index PATH` first or pass --stories"
            ) from None
        click.echo(f"building the index from {config.stories_dir} ...", err=True)
        summary = _run_index((config.stories_dir,), config, None)
        click.echo(f"{config.index_dir}: {summary.line()}", err=True)
    except (UnknownEngineError, IndexWriteError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        serve_forever(config, host=host, port=port, threads=threads, workers=workers)
    except ServeError as exc:
        raise click.ClickException(str(exc)) from None
