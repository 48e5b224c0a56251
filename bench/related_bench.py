"""Related stories: are the stories listed as related about the same thing?

Cranfield and CISI have no "related" judgments, but documents judged
relevant to the same query are about the same thing: each document judged
relevant to some query is a seed, and its *related* set is every other
document judged relevant to any query it is relevant to.  For each seed
with a related set, the first 5 stories listed are scored:

* precision@5: the share of the 5 slots that hold a related story (an empty
  slot counts as not related: a short list is not rewarded);
* shown precision: the share of the stories shown that are related (what a
  reader sees);
* shown: the mean number of stories listed (the minimum score may cut it).

Side by side:

* ``engine``: ``WhooshEngine.related`` as served (:mod:`search_service.backends.whoosh.related`);
* ``bm25 mlt``: a plain BM25 more-like-this, the story's top 25 tf-idf words
  (headline and body counted alike, no weights) searched for as a free-text
  OR, no minimum score;
* with ``--grid``, the engine's settings (terms searched, minimum share) varied.

The indexes are built as bench/relevance.py builds them (the real CLI on JSON Lines).

    python bench/related_bench.py
    python bench/related_bench.py --grid
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from relevance import Collection, build_index, cisi, cranfield

from _common import require, shared_dir, table

K = 5
MLT_TERMS = 25

Related = Callable[[str], list[str]]


def related_sets(collection: Collection) -> dict[str, set[str]]:
    """Seed document -> the other documents judged relevant to a query it is relevant to."""
    related: dict[str, set[str]] = {}
    for judged in collection.qrels.values():
        relevant = {d for d, gain in judged.items() if gain > 0 and d in collection.docs}
        for doc in relevant:
            related.setdefault(doc, set()).update(relevant - {doc})
    return {doc: others for doc, others in related.items() if others}


def score(related: dict[str, set[str]], listed: Related) -> tuple[float, float, float, float]:
    """precision@K, shown precision, mean shown, ms per call."""
    p_at_k, shown_p, shown = [], [], []
    started = time.perf_counter()
    for seed, others in related.items():
        ids = listed(seed)[:K]
        hits = sum(1 for d in ids if d in others)
        p_at_k.append(hits / K)
        shown.append(len(ids))
        if ids:
            shown_p.append(hits / len(ids))
    ms = (time.perf_counter() - started) * 1000 / len(related)
    return float(np.mean(p_at_k)), float(np.mean(shown_p)) if shown_p else 0.0, float(np.mean(shown)), ms


def engine_related(engine) -> Related:  # type: ignore[no-untyped-def]
    return lambda doc_id: [h.id for h in engine.related(doc_id, limit=K) or []]


def bm25_more_like_this(engine) -> Related:  # type: ignore[no-untyped-def]
    """The baseline: top 25 tf-idf words, headline and body alike, as an unweighted OR; no floor."""
    from search_service.backends.whoosh.engine import _ordered
    from search_service.backends.whoosh.evaluation import Evaluation
    from search_service.backends.whoosh.query import any_field
    from search_service.backends.whoosh.related import key_terms

    def listed(doc_id: str) -> list[str]:
        searcher = engine._view().searcher
        corpus = engine._corpus_of(searcher)
        docnum = searcher.document_number(id=doc_id)
        stored = searcher.stored_fields(docnum)
        texts = {"headline": stored["headline"], "body": stored["body"]}
        terms = [t for t, _ in key_terms(searcher.reader(), texts, MLT_TERMS, {"headline": 1.0, "body": 1.0})]
        scores, matched = Evaluation(searcher, corpus, 10.0).run(any_field(terms))
        matched[docnum] = False
        docnums, _ = _ordered(corpus, scores, matched, "relevance", K)
        return [searcher.stored_fields(n)["id"] for n in docnums]

    return listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true", help="also vary the engine's terms and minimum share")
    args = parser.parse_args()
    from search_service.backends.whoosh import WhooshEngine, related

    base = require(shared_dir() / "relevance", "the Cranfield and CISI collections")
    rows = []
    for collection in (cranfield(base / "cranfield"), cisi(base / "cisi")):
        index_dir, _ = build_index(collection)
        seeds = related_sets(collection)
        engine = WhooshEngine(index_dir)
        print(f"{collection.name}: {len(seeds)} seed documents with related documents")
        rows.append([collection.name, "bm25 mlt (25 words)", *score(seeds, bm25_more_like_this(engine))])
        defaults = (related.RELATED_TERMS, related.MIN_SHARE)
        settings = [defaults]
        if args.grid:
            settings += [
                (n, share) for n in (10, 20, 30) for share in (0.0, 0.1, 0.15, 0.2, 0.3) if (n, share) != defaults
            ]
        for n, share in settings:
            related.RELATED_TERMS, related.MIN_SHARE = n, share
            label = "engine" + (" (served)" if (n, share) == defaults else "") + f" {n} terms, min share {share}"
            rows.append([collection.name, label, *score(seeds, engine_related(engine))])
        related.RELATED_TERMS, related.MIN_SHARE = defaults
    print()
    print(table(["collection", "related by", f"P@{K}", "shown precision", "shown", "ms/story"], rows))


if __name__ == "__main__":
    main()
