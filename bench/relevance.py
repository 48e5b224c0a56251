"""Ranking quality: nDCG@10 (and MAP@100, P@10) on Cranfield and CISI, end to end.

The pipeline is what a user would do: the documents become JSON Lines
(``id`` from .I, ``headline`` from .T, ``body`` from .W; authors (.A) and
sources (.B) are left out because a news story has neither in its text; no
``published``), ``search-service index FILE.jsonl --index DIR`` builds the
index, a real ``search-service serve`` answers, and every query goes through
``GET /api/search`` as one string (the .W text, whitespace collapsed).

Judgments.  Cranfield: ``cranqrel`` numbers queries by their *position* in
cran.qry (the .I numbers have gaps); grades are 1 (complete answer) to 4
(minimum interest), -1 none, mapped to gains 4, 3, 2, 1 (and -1 to 0), the
same reversal ir_datasets uses; binary relevance counts grades 1-4 as
relevant.  CISI: CISI.REL is binary.  Queries with no relevant document are
left out of the averages (as trec_eval does).  nDCG uses linear gains and
log2 discounts over the ideal ranking of *all* judged documents.

A query the server refuses (400: over its length or term limits) scores 0 in
the "all queries" figures: that is what the user got.  The figures over the
answered queries alone are printed beside them.

``--sweep`` runs a small grid of ranking settings in-process through
:class:`search_service.backends.whoosh.WhooshEngine`, by setting the module constants
(``similarity.K1``/``B``, ``query.FIELD_WEIGHTS``/``KEYWORD_WORDS``) before
each engine is built; the service's code and files are not changed.  It
asks for per_page=10 (highlighting 100 hits per query made the grid slow).

``--engine xapian`` runs the same pipeline with the Xapian engine
(``SEARCH_SERVICE_ENGINE=xapian``, the database in the ``--index`` folder) beside
the Whoosh engine, and prints the difference in nDCG@10.

    python bench/relevance.py                  # the end-to-end figures
    python bench/relevance.py --engine xapian  # Xapian beside Whoosh
    python bench/relevance.py --sweep          # plus the grid of settings
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from _common import Server, require, shared_dir, table, work_dir

#: Best published BM25 nDCG@10 on the same collections (the goals to compare with).
GOALS = {"cranfield": 0.381, "cisi": 0.386}
#: Cranfield grade (1 best .. 4 least) -> gain; -1 (not relevant) -> 0.
CRANFIELD_GAINS = {1: 4, 2: 3, 3: 2, 4: 1}
DEPTH = 100
_FIELD = re.compile(r"^\.([A-Z])\b ?(.*)$")


@dataclass
class Collection:
    name: str
    docs: dict[str, dict[str, str]]
    queries: list[tuple[str, str]]  # (qrels key, query text), in file order
    qrels: dict[str, dict[str, int]]  # qrels key -> doc id -> gain
    notes: list[str] = field(default_factory=list)


def records(path: Path) -> Iterator[dict[str, str]]:
    """The ``.I``/``.T``/``.A``/``.W``/... records of a SMART-format file."""
    current: dict[str, str] | None = None
    key = None
    for line in path.read_text(encoding="latin-1").splitlines():
        match = _FIELD.match(line)
        if match and match.group(1) == "I":
            if current is not None:
                yield current
            current = {"I": match.group(2).strip()}
            key = None
        elif match and current is not None and not match.group(2).strip():
            key = match.group(1)
            current[key] = ""
        elif current is not None and key is not None:
            current[key] += line + "\n"
    if current is not None:
        yield current


def collapse(text: str) -> str:
    return " ".join(text.split())


def _docs(path: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    docs = {}
    empty = []
    for rec in records(path):
        headline, body = collapse(rec.get("T", "")), rec.get("W", "").strip()
        if not headline or not body:
            empty.append(rec["I"])
            continue
        docs[rec["I"]] = {"id": rec["I"], "headline": headline, "body": body}
    if empty:
        notes.append(f"{len(empty)} documents with no title or text not indexed (ids {', '.join(empty)})")
    return docs


def cranfield(folder: Path) -> Collection:
    notes: list[str] = []
    docs = _docs(folder / "cran.all.1400", notes)
    queries = [(str(n), collapse(rec.get("W", ""))) for n, rec in enumerate(records(folder / "cran.qry"), 1)]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "cranqrel").read_text().splitlines():
        if line.strip():
            q, doc, grade = line.split()[:3]
            qrels.setdefault(q, {})[doc] = CRANFIELD_GAINS.get(int(grade), 0)
    return Collection("cranfield", docs, queries, qrels, notes)


def cisi(folder: Path) -> Collection:
    notes: list[str] = []
    docs = _docs(folder / "CISI.ALL", notes)
    queries = [(rec["I"], collapse(rec.get("W", ""))) for rec in records(folder / "CISI.QRY")]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "CISI.REL").read_text().splitlines():
        if line.strip():
            q, doc = line.split()[:2]
            qrels.setdefault(q, {})[doc] = 1
    return Collection("cisi", docs, queries, qrels, notes)


# ---------------------------------------------------------------- metrics


def ndcg(ranking: list[str], gains: dict[str, int], k: int = 10) -> float:
    dcg = sum(gains.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def average_precision(ranking: list[str], relevant: set[str], k: int = DEPTH) -> float:
    found, total = 0, 0.0
    for i, d in enumerate(ranking[:k], 1):
        if d in relevant:
            found += 1
            total += found / i
    return total / len(relevant) if relevant else 0.0


def precision(ranking: list[str], relevant: set[str], k: int = 10) -> float:
    return sum(1 for d in ranking[:k] if d in relevant) / k


@dataclass
class Scores:
    """Per-query metrics for the judged queries, in query order."""

    ndcg: list[float] = field(default_factory=list)
    ndcg_binary: list[float] = field(default_factory=list)
    ap: list[float] = field(default_factory=list)
    p10: list[float] = field(default_factory=list)
    answered: list[bool] = field(default_factory=list)

    def add(self, ranking: list[str] | None, gains: dict[str, int]) -> None:
        """Score one query; ``None`` is a refused query, which scores 0."""
        relevant = {d for d, g in gains.items() if g > 0}
        self.answered.append(ranking is not None)
        ranking = ranking or []
        self.ndcg.append(ndcg(ranking, gains))
        self.ndcg_binary.append(ndcg(ranking, dict.fromkeys(relevant, 1)))
        self.ap.append(average_precision(ranking, relevant))
        self.p10.append(precision(ranking, relevant))

    @property
    def refused(self) -> int:
        return self.answered.count(False)

    def means(self, answered_only: bool = False) -> dict[str, float]:
        keep = self.answered if answered_only else [True] * len(self.answered)

        def avg(values: list[float]) -> float:
            kept = [v for v, k in zip(values, keep) if k]
            return mean(kept) if kept else math.nan

        return {"ndcg": avg(self.ndcg), "ndcg_bin": avg(self.ndcg_binary), "map": avg(self.ap), "p10": avg(self.p10)}


Search = Callable[[str, int], list[str] | None]


def judged(collection: Collection) -> list[tuple[str, str]]:
    """The queries with at least one relevant document (the others are left out, as in trec_eval)."""
    return [(k, t) for k, t in collection.queries if any(g > 0 for g in collection.qrels.get(k, {}).values())]


def evaluate(collection: Collection, search: Search, per_page: int = DEPTH) -> Scores:
    """Run every judged query through ``search`` and score the rankings."""
    scores = Scores()
    for key, text in judged(collection):
        scores.add(search(text, per_page), collection.qrels[key])
    return scores


# ---------------------------------------------------------------- end to end


def build_index(collection: Collection, engine: str = "whoosh") -> tuple[Path, float]:
    """Write the JSON Lines and index them with the real CLI (``engine`` from the environment); folder and seconds."""
    folder = work_dir(f"relevance/{collection.name}")
    jsonl = folder / f"{collection.name}.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for doc in collection.docs.values():
            f.write(json.dumps(doc) + "\n")
    index_dir = folder / ("index" if engine == "whoosh" else f"index-{engine}")
    shutil.rmtree(index_dir, ignore_errors=True)
    started = time.perf_counter()
    command = [sys.executable, "-m", "search_service", "index", str(jsonl), "--index", str(index_dir), "--strict"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"indexing failed: {' '.join(command)}\n{done.stdout}{done.stderr}")
    print(
        f"  $ SEARCH_SERVICE_ENGINE={engine} search-service index {jsonl} --index {index_dir} --strict\n"
        f"    {done.stdout.strip()}"
    )
    return index_dir, time.perf_counter() - started


def http_search(server: Server) -> tuple[Search, dict[str, str]]:
    """A ``search`` over one keep-alive connection, and the server's message per refused query."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    refusals: dict[str, str] = {}

    def search(text: str, per_page: int) -> list[str] | None:
        conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": text, "per_page": per_page}))
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status == 400:
            refusals[text] = body["error"]["message"]
            return None
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} for {text[:60]!r}: {body}")
        return [hit["id"] for hit in body["hits"]]

    return search, refusals


def end_to_end(collections: list[Collection], engines: list[str]) -> None:
    """Index with the CLI, serve, query over HTTP, print the table (one row per engine and collection)."""
    rows = []
    ndcg: dict[tuple[str, str], float] = {}
    for engine, collection in itertools.product(engines, collections):
        os.environ["SEARCH_SERVICE_ENGINE"] = engine
        print(
            f"{collection.name}: {len(collection.docs)} documents indexed, {len(collection.queries)} queries, "
            f"{len(judged(collection))} with relevant documents"
        )
        for note in collection.notes:
            print(f"  note: {note}")
        index_dir, seconds = build_index(collection, engine)
        with Server(index_dir, log_name=f"relevance-{collection.name}") as server:
            search, refusals = http_search(server)
            started = time.perf_counter()
            top10 = evaluate(collection, search, 10)
            deep = evaluate(collection, search, DEPTH)
            took = time.perf_counter() - started
        print(f"  indexed in {seconds:.1f} s; {2 * len(top10.answered)} HTTP searches in {took:.1f} s")
        if top10.refused:
            print(f"  refused by the server (HTTP 400): {top10.refused} of {len(top10.answered)} judged queries")
            reasons: dict[str, int] = {}
            for _key, text in judged(collection):
                if text in refusals:
                    reason = re.sub(r"\d[\d,]*", "N", refusals[text].split(";")[0])
                    reasons[reason] = reasons.get(reason, 0) + 1
            for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                print(f"    {n} x '{reason}'")
        for label, answered_only in (("all judged queries", False), ("answered only", True)):
            if answered_only and not top10.refused:
                continue
            m10, m100 = top10.means(answered_only), deep.means(answered_only)
            n = top10.answered.count(True) if answered_only else len(top10.answered)
            rows.append(
                [
                    engine,
                    collection.name,
                    label,
                    n,
                    m10["ndcg"],
                    m10["ndcg_bin"],
                    m100["map"],
                    m10["p10"],
                    GOALS[collection.name],
                ]
            )
            ndcg.setdefault((engine, collection.name), m10["ndcg"])
    os.environ.pop("SEARCH_SERVICE_ENGINE", None)
    print()
    print(
        table(
            ["engine", "collection", "queries", "n", "nDCG@10", "nDCG@10 bin", "MAP@100", "P@10", "goal nDCG@10"], rows
        )
    )
    for engine in engines[1:]:
        for c in collections:
            diff = ndcg[engine, c.name] - ndcg[engines[0], c.name]
            print(
                f"{engine} - {engines[0]} nDCG@10 on {c.name}: {diff:+.4f} ({'within' if abs(diff) <= 0.01 else 'NOT within'} 0.01)"
            )
    print(
        "Cranfield gains: grade 1->4, 2->3, 3->2, 4->1, -1->0; 'bin' = binary (grades 1-4 relevant). "
        "Refused queries score 0 under 'all judged queries'."
    )


# ---------------------------------------------------------------- sweep


def engine_search(index_dir: Path, limits: object) -> Search:
    """A ``search`` function over a fresh in-process WhooshEngine (built after constants are set)."""
    from search_service.backends.whoosh import WhooshEngine
    from search_service.model import QueryError, SearchRequest

    engine = WhooshEngine(index_dir, limits)  # type: ignore[arg-type]

    def search(text: str, per_page: int) -> list[str] | None:
        try:
            return [h.id for h in engine.search(SearchRequest(q=text, per_page=per_page)).hits]
        except QueryError:
            return None

    return search


def sweep(collections: list[Collection]) -> None:
    """nDCG@10 over a small grid of principled settings, in-process; the service code is untouched."""
    from search_service import similarity
    from search_service.backends.whoosh import query
    from search_service.config import Limits

    def current() -> tuple[float, float, float, int]:
        return similarity.K1, similarity.B, query.FIELD_WEIGHTS["headline"], query.KEYWORD_WORDS

    def apply(k1: float, b: float, headline: float, keywords: int) -> None:
        similarity.K1, similarity.B, query.KEYWORD_WORDS = k1, b, keywords
        query.FIELD_WEIGHTS = {**query.FIELD_WEIGHTS, "headline": headline}

    defaults = current()
    index_dirs = {c.name: work_dir(f"relevance/{c.name}") / "index" for c in collections}
    unlimited = Limits(max_query_chars=100_000, max_terms=1_000)
    grid = [
        (k1, b, h, defaults[3], "default")
        for k1, b, h in itertools.product((0.9, 1.2, 1.5), (0.5, 0.75, 0.9), (1.0, 2.0, 3.0, 4.0))
    ]
    grid += [(*defaults[:3], words, "default") for words in (0, 100)]
    grid.append((*defaults, "no length/term limits"))
    rows = []
    try:
        for k1, b, headline, keywords, limit_name in grid:
            apply(k1, b, headline, keywords)
            limits = unlimited if limit_name != "default" else Limits()
            row: list[object] = [f"k1={k1} b={b} headline={headline} keyword_words={keywords}", limit_name]
            per = []
            for collection in collections:
                scores = evaluate(collection, engine_search(index_dirs[collection.name], limits), 10)
                per.append(scores.means()["ndcg"])
                row += [per[-1], scores.refused]
            row.append(mean(per))
            rows.append(row)
            print(f"  {row[0]} ({limit_name}): " + ", ".join(f"{v:.4f}" for v in per), file=sys.stderr)
    finally:
        apply(*defaults)
    headers = ["setting", "limits"]
    for c in collections:
        headers += [f"{c.name} nDCG@10", "refused"]
    headers.append("mean")
    print()
    print(
        f"Sweep (in-process WhooshEngine; defaults k1={defaults[0]} b={defaults[1]} "
        f"headline={defaults[2]} keyword_words={defaults[3]}):"
    )
    print(table(headers, sorted(rows, key=lambda r: -float(r[-1]))))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="also run the small grid of ranking settings")
    parser.add_argument(
        "--engine",
        choices=["whoosh", "xapian"],
        default="whoosh",
        help="xapian: the Xapian engine, beside the Whoosh engine for comparison",
    )
    args = parser.parse_args()
    root = require(shared_dir() / "relevance", "the Cranfield and CISI collections")
    collections = [cranfield(root / "cranfield"), cisi(root / "cisi")]
    end_to_end(collections, ["whoosh"] if args.engine == "whoosh" else ["whoosh", args.engine])
    if args.sweep:
        sweep(collections)


if __name__ == "__main__":
    main()
