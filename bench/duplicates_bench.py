"""Near-duplicate grouping on Reuters: precision and recall, added indexing time, query time.

The corpus: the first ``--stories`` Reuters story files, plus made-up
versions of ``--seeds`` of them (spread over the corpus; bodies of at least
60 words), one of each kind, in a JSON Lines file beside them:

* ``rewrapped``: the body's lines broken elsewhere, paragraphs joined;
* ``added``: a sentence added at the end; ``removed``: the last sentence removed;
* ``number``: one figure changed;
* ``headline``: another headline (and another date).

Precision and recall are over *pairs* of stories put in one group:

* made-up: the true pairs are a seed with each of its versions and the
  versions with each other; every grouped pair with a made-up story in it is
  counted (a version grouped with an unrelated story is a false pair);
* natural duplicates (pairs of the corpus's own stories): the truth is the
  definition itself, an exact Jaccard similarity of the 3-term shingle sets
  of at least ``duplicates.THRESHOLD`` (both bodies long enough to group),
  computed exactly over every pair sharing a shingle; this measures what
  MinHash/LSH loses or adds to it.  A few grouped pairs are printed to look at.

Indexing time: the same files indexed (fresh, the default worker count) with
the near-duplicate field in the schema and without it (what an index from
before grouping has), alternately, ``--repeat`` times; wall and CPU seconds
(parent and workers), as other load on the machine moves the wall time.  Query time:
free-text queries of headline words, in-process, with ``collapse`` on and off.

    python bench/duplicates_bench.py                        # 5,000 stories, 200 seeds
    python bench/duplicates_bench.py --stories 19040 --seeds 400 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import statistics
import time
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

from _common import percentile, reuters_stories, table, work_dir

KINDS = ("rewrapped", "added", "removed", "number", "headline")


def make_versions(story, rng: random.Random) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """One made-up version of ``story`` of each kind, as JSON Lines records."""
    body = story.body
    sentences = re.split(r"(?<=\.)\s+", body.replace("\n\n", " "))
    words = body.split()
    rewrapped = "\n\n".join(" ".join(words[i : i + 11]) for i in range(0, len(words), 11))
    figures = [m for m in re.finditer(r"\b\d+(\.\d+)?\b", body)]
    if figures:
        m = rng.choice(figures)
        changed = body[: m.start()] + str(int(float(m.group()) * 1.5) + 1) + body[m.end() :]
    else:
        changed = body.replace(" said ", " reported ", 1)
    bodies = {
        "rewrapped": rewrapped,
        "added": body + " Further details were not immediately available, a spokesman for the company said.",
        "removed": " ".join(sentences[:-1]) if len(sentences) > 1 else " ".join(words[:-12]),
        "number": changed,
        "headline": body,
    }
    records = []
    for kind, text in bodies.items():
        headline = (
            "UPDATE 1-" + story.headline
            if kind != "headline"
            else f"Wire: {' '.join(reversed(story.headline.split()))}"
        )
        published = story.published.isoformat() if story.published else None
        records.append({"id": f"v-{story.id}-{kind}", "headline": headline, "body": text, "published": published})
    return records


def build_corpus(stories: int, seeds: int) -> tuple[Path, dict[str, str]]:
    """A folder of story files and made-up versions; returns it and made-up id -> seed id."""
    from search_service.stories import read_file

    source = sorted(reuters_stories().rglob("*.txt"))[:stories]
    folder = work_dir("duplicates") / f"corpus-{stories}-{seeds}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "stories").mkdir(parents=True)
    for path in source:
        shutil.copy(path, folder / "stories" / path.name)
    rng = random.Random(7)
    candidates = []
    for path in source:
        result = read_file(path)
        if result.stories and len(result.stories[0].body.split()) >= 60:
            candidates.append(result.stories[0])
    chosen = rng.sample(candidates, min(seeds, len(candidates)))
    made: dict[str, str] = {}
    with open(folder / "versions.jsonl", "w", encoding="utf-8") as out:
        for story in chosen:
            for record in make_versions(story, rng):
                out.write(json.dumps(record) + "\n")
                made[str(record["id"])] = story.id
    return folder, made


def build_index(folder: Path, grouping: bool) -> tuple[Path, float, float]:
    from whoosh import index as whoosh_index

    from search_service.backends.whoosh.groups import SIGNATURE_FIELD
    from search_service.backends.whoosh.indexer import index_paths
    from search_service.backends.whoosh.schema import build_schema

    index_dir = folder.parent / f"index-{folder.name}-{'grouped' if grouping else 'plain'}"
    shutil.rmtree(index_dir, ignore_errors=True)
    index_dir.mkdir()
    schema = build_schema()
    if not grouping:
        schema.remove(SIGNATURE_FIELD)
    whoosh_index.create_in(index_dir, schema)
    cpu = _cpu_seconds()
    summary = index_paths([folder], index_dir)
    assert not summary.skips, summary.line()
    return index_dir, summary.seconds, _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the indexing workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def grouped_pairs(index_dir: Path) -> set[tuple[str, str]]:
    from whoosh import index as whoosh_index

    from search_service.backends.whoosh import groups

    generation = whoosh_index.open_dir(index_dir).latest_generation()
    members: dict[str, list[str]] = defaultdict(list)
    for story_id, label in groups.load(index_dir, generation).groups.items():
        members[label].append(story_id)
    return {tuple(sorted(pair)) for ids in members.values() for pair in combinations(ids, 2)}  # type: ignore[misc]


def exact_pairs(folder: Path) -> tuple[set[tuple[str, str]], dict[str, set[int]]]:
    """The pairs of the corpus's own stories at exact Jaccard >= THRESHOLD, and each story's shingles."""
    from search_service.analysis import TOKEN_RE, normalize
    from search_service.duplicates import MIN_SHINGLES, SHINGLE, THRESHOLD
    from search_service.stories import read_file

    shingles: dict[str, set[int]] = {}
    for path in sorted((folder / "stories").glob("*.txt")):
        for story in read_file(path).stories:
            terms = [t for t in map(normalize, TOKEN_RE.findall(story.body)) if t]
            found = {hash(tuple(terms[i : i + SHINGLE])) for i in range(len(terms) - SHINGLE + 1)}
            if len(terms) - SHINGLE + 1 >= MIN_SHINGLES:
                shingles[story.id] = found
    postings: dict[int, list[str]] = defaultdict(list)
    for story_id, found in shingles.items():
        for s in found:
            postings[s].append(story_id)
    shared: Counter[tuple[str, str]] = Counter()
    for ids in postings.values():
        if 1 < len(ids) <= 200:
            shared.update(tuple(sorted(pair)) for pair in combinations(ids, 2))  # type: ignore[misc]
    pairs = set()
    for (a, b), n in shared.items():
        if n / (len(shingles[a]) + len(shingles[b]) - n) >= THRESHOLD:
            pairs.add((a, b))
    return pairs, shingles


def precision_recall(found: set[tuple[str, str]], true: set[tuple[str, str]]) -> tuple[float, float]:
    hits = len(found & true)
    return hits / len(found) if found else 1.0, hits / len(true) if true else 1.0


def query_times(index_dir: Path, rounds: int = 3) -> dict[bool, list[float]]:
    from search_service.backends.whoosh import WhooshEngine
    from search_service.model import SearchRequest

    engine = WhooshEngine(index_dir)
    rng = random.Random(3)
    words = [h.headline.split()[0] for h in engine.search(SearchRequest(q="*", per_page=100)).hits]
    queries = [w for w in words if w.isalpha() and len(w) > 3][:60]
    queries += [f"{a} {b}" for a, b in zip(rng.sample(queries, 40), rng.sample(queries, 40))]
    times: dict[bool, list[float]] = {True: [], False: []}
    for q in queries:  # warm
        engine.search(SearchRequest(q=q))
    for _ in range(rounds):
        for collapse in (True, False):
            for q in queries:
                started = time.perf_counter()
                engine.search(SearchRequest(q=q, collapse=collapse))
                times[collapse].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    folder, made = build_corpus(args.stories, args.seeds)
    print(f"{args.stories} Reuters stories and {len(made)} made-up versions of {len(made) // len(KINDS)} of them")
    seconds: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    index_dir = folder
    for _ in range(args.repeat):
        for grouping in (False, True):
            built, took, used = build_index(folder, grouping)
            seconds[grouping].append(took)
            cpu[grouping].append(used)
            if grouping:
                index_dir = built
    found = grouped_pairs(index_dir)

    true_made = set()
    by_seed: dict[str, list[str]] = defaultdict(list)
    for version_id, seed in made.items():
        by_seed[seed].append(version_id)
    for seed, versions in by_seed.items():
        true_made |= {tuple(sorted(p)) for p in combinations([seed, *versions], 2)}  # type: ignore[misc]
    found_made = {p for p in found if p[0] in made or p[1] in made}
    p_made, r_made = precision_recall(found_made, true_made)
    kind_recall = {
        kind: statistics.mean(tuple(sorted((seed, f"v-{seed}-{kind}"))) in found for seed in by_seed) for kind in KINDS
    }

    natural_true, _ = exact_pairs(folder)
    found_natural = {p for p in found if p[0] not in made and p[1] not in made}
    p_nat, r_nat = precision_recall(found_natural, natural_true)

    times = query_times(index_dir)
    print()
    print(
        table(
            ["pairs", "true", "grouped", "precision", "recall"],
            [
                ["made-up versions", len(true_made), len(found_made), p_made, r_made],
                ["natural (exact Jaccard >= threshold)", len(natural_true), len(found_natural), p_nat, r_nat],
            ],
        )
    )
    print("recall of a seed with its version, by kind: " + ", ".join(f"{k} {v:.3f}" for k, v in kind_recall.items()))
    for label, figures in (("wall", seconds), ("CPU", cpu)):
        plain, grouped = min(figures[False]), min(figures[True])
        print(
            f"indexing {label} seconds (best of {args.repeat}): without groups {plain:.1f}, with {grouped:.1f} "
            f"({(grouped / plain - 1) * 100:+.1f}%); all runs: {[round(x, 1) for x in figures[False]]} "
            f"vs {[round(x, 1) for x in figures[True]]}"
        )
    print(
        f"query ms p50/p99 ({len(times[True])} searches): collapse on {percentile(times[True], 50):.2f}/"
        f"{percentile(times[True], 99):.2f}, off {percentile(times[False], 50):.2f}/{percentile(times[False], 99):.2f}"
    )
    examples = sorted(found_natural - natural_true)[:3] + sorted(found_natural & natural_true)[:3]
    if examples:
        from search_service.backends.whoosh import WhooshEngine

        engine = WhooshEngine(index_dir)
        print("\nsome natural pairs grouped (first three: not at the exact threshold):")
        for a, b in examples:
            sa, sb = engine.story(a), engine.story(b)
            print(f"  {a}: {sa.headline[:60]!r}\n  {b}: {sb.headline[:60]!r}")


if __name__ == "__main__":
    main()
