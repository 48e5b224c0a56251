"""Did-you-mean on typos made from the Reuters stories, beside Norvig's corrector.

    python bench/spelling_bench.py [--index DIR] [--sizes 100,1000] [--seed 7] [--real-words 300]

Each set draws words from random stories (five letters or more, no stop
word, in at least three stories) and makes one typo of each word: a letter
dropped, doubled, swapped with the next, or replaced by a neighbouring key,
a quarter of each, and never a word some story has.  Each typo is searched
alone (``explorattion``) and beside another word of its story (``explorattion
petroleum``), through ``WhooshEngine.search``: a typo counts as fixed when
the results are those of the intended words (``corrected_from``) or the
suggestion is them.  The same typos go to a plain corrector over the same
word counts (Norvig's: a known word one edit away, else two, the commonest
first).  Extra time: for each typo, the median of three searches of the
misspelt query less that of the query as meant; the median of those.

The other side of the coin: words of the Cranfield and CISI collections
(``shared/relevance``) that no Reuters story has are real words, not typos;
the share of a sample of them each corrector changes is printed too (the engine leaves
a word alone when nothing close is much commoner, and corrects a form
whose stem the stories have only to a far commoner word or a respelling).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, reuters_index, shared_dir, stored_stories, table

sys.path.insert(0, str(REPO))

from search_service.analysis import STOP, fold
from search_service.backends.whoosh import WhooshEngine
from search_service.model import SearchRequest
from search_service.vocabulary import text_words

KINDS = ("dropped", "doubled", "swapped", "neighbour")
MIN_WORD = 5
MIN_STORIES = 3
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
#: The keys beside each letter on a QWERTY keyboard (same row and the rows above and below).
NEIGHBOURS = {
    letter: "".join(
        other
        for r2, row2 in enumerate(_ROWS)
        for c2, other in enumerate(row2)
        if abs(r2 - r) <= 1 and abs(c2 - c) <= 1 and other != letter
    )
    for r, row in enumerate(_ROWS)
    for c, letter in enumerate(row)
}


@dataclass(frozen=True)
class Typo:
    """A misspelt word, the word meant, how it was made, and another word of its story."""

    typo: str
    meant: str
    kind: str
    other: str


def story_texts(index_dir: Path) -> list[str]:
    """The headline and body of every story in the index, in the order of their ids (not of the segments)."""
    stories = sorted(stored_stories(index_dir), key=lambda s: str(s["id"]))
    return [f"{s['headline']}\n{s['body']}" for s in stories]


def word_counts(texts: list[str]) -> Counter[str]:
    """Stories per word, counted as the index's dictionary counts them."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text_words(text))
    return counts


def misspell(word: str, kind: str, rng: random.Random) -> str | None:
    """One typo of ``kind`` in ``word``, or None if the word allows none."""
    at = rng.randrange(len(word))
    if kind == "dropped":
        return word[:at] + word[at + 1 :]
    if kind == "doubled":
        return word[: at + 1] + word[at:]
    if kind == "swapped":
        at = rng.randrange(len(word) - 1)
        if word[at] == word[at + 1]:
            return None
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    keys = NEIGHBOURS.get(word[at], "")
    return word[:at] + rng.choice(keys) + word[at + 1 :] if keys else None


def typo_set(texts: list[str], counts: Counter[str], size: int, seed: int) -> list[Typo]:
    """``size`` typos, a quarter of each kind, none a word of the stories."""
    rng = random.Random(seed)
    found: list[Typo] = []
    while len(found) < size:
        words = sorted(
            w
            for w in text_words(rng.choice(texts))
            if len(w) >= MIN_WORD and w not in STOP and counts[w] >= MIN_STORIES and w.isascii()
        )
        if len(words) < 2:
            continue
        meant, other = rng.sample(words, 2)
        kind = KINDS[len(found) % len(KINDS)]
        typo = misspell(meant, kind, rng)
        if typo and typo not in counts and typo != meant:
            found.append(Typo(typo, meant, kind, other))
    return found


class Norvig:
    """Peter Norvig's corrector (norvig.com/spell-correct.html) over the same word counts."""

    LETTERS = "abcdefghijklmnopqrstuvwxyz"

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def correction(self, word: str) -> str:
        return max(self._candidates(word), key=lambda w: self.counts[w])

    def _candidates(self, word: str) -> set[str]:
        return self._known([word]) or self._known(self._edits1(word)) or self._known(self._edits2(word)) or {word}

    def _known(self, words) -> set[str]:  # type: ignore[no-untyped-def]
        return {w for w in words if w in self.counts}

    def _edits1(self, word: str) -> set[str]:
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        deletes = [a + b[1:] for a, b in splits if b]
        transposes = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
        replaces = [a + c + b[1:] for a, b in splits if b for c in self.LETTERS]
        inserts = [a + c + b for a, b in splits for c in self.LETTERS]
        return set(deletes + transposes + replaces + inserts)

    def _edits2(self, word: str):  # type: ignore[no-untyped-def]
        return (e2 for e1 in self._edits1(word) for e2 in self._edits1(e1))


def engine_fix(engine: WhooshEngine, q: str) -> str | None:
    """What the engine makes of ``q``: the query of a corrected result, or its suggestion (folded)."""
    result = engine.search(SearchRequest(q=q))
    fixed = result.query if result.corrected_from is not None else result.suggestion
    return fold(fixed) if fixed else None


def fixed_share(engine: WhooshEngine, typos: list[Typo], beside: bool) -> float:
    """The share of ``typos`` whose intended query the engine searches or suggests."""
    hits = 0
    for t in typos:
        if beside:
            hits += engine_fix(engine, f"{t.typo} {t.other}") == f"{t.meant} {t.other}"
        else:
            hits += engine_fix(engine, t.typo) == t.meant
    return hits / len(typos)


def norvig_share(norvig: Norvig, typos: list[Typo], beside: bool) -> float:
    """The share of ``typos`` Norvig's corrector puts right (beside: without changing the other word)."""
    hits = 0
    for t in typos:
        hits += norvig.correction(t.typo) == t.meant and (not beside or norvig.correction(t.other) == t.other)
    return hits / len(typos)


def real_words(counts: Counter[str], size: int, seed: int) -> list[str]:
    """``size`` words of Cranfield and CISI (five letters or more) that no Reuters story has: real words, no typos."""
    found: set[str] = set()
    for name in ("cranfield/cran.all.1400", "cisi/CISI.ALL"):
        path = shared_dir() / "relevance" / name
        if path.is_file():
            found |= text_words(path.read_text("utf-8", errors="replace"))
    words = sorted(w for w in found if len(w) >= MIN_WORD and w.isascii() and w not in STOP and w not in counts)
    return random.Random(seed).sample(words, min(size, len(words)))


def changed_share(engine: WhooshEngine, norvig: Norvig, words: list[str]) -> tuple[float, float]:
    """The shares of ``words`` the engine's corrector and Norvig's change."""
    engine_changed = sum(engine_fix(engine, w) not in (None, w) for w in words)
    norvig_changed = sum(norvig.correction(w) != w for w in words)
    return engine_changed / len(words), norvig_changed / len(words)


def _median_ms(engine: WhooshEngine, q: str, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        engine.search(SearchRequest(q=q))
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def extra_ms(engine: WhooshEngine, typos: list[Typo], beside: bool) -> float:
    """Median over ``typos`` of the misspelt query's time less the intended query's."""
    extra = []
    for t in typos:
        tail = f" {t.other}" if beside else ""
        meant = _median_ms(engine, t.meant + tail)
        extra.append(_median_ms(engine, t.typo + tail) - meant)
    return statistics.median(extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, help="an index of the Reuters stories (default: built in bench/.work)")
    parser.add_argument("--sizes", default="100,1000", help="typo set sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real-words", type=int, default=300, help="real words missing from Reuters to try")
    args = parser.parse_args()
    index_dir = reuters_index(args.index)
    texts = story_texts(index_dir)
    counts = word_counts(texts)
    engine = WhooshEngine(index_dir)
    norvig = Norvig(counts)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        typos = typo_set(texts, counts, size, args.seed)
        for beside in (False, True):
            rows.append(
                (
                    f"{size} typos, {'beside a word' if beside else 'alone'}",
                    f"{fixed_share(engine, typos, beside):.1%}",
                    f"{norvig_share(norvig, typos, beside):.1%}",
                    f"{extra_ms(engine, typos, beside):.2f}",
                )
            )
    print(f"{len(texts):,} stories, {len(counts):,} words; goal: >= 90% and >= Norvig, extra <= 10 ms")
    print(table(("set", "engine fixed", "Norvig fixed", "extra ms (median)"), rows))
    words = real_words(counts, args.real_words, args.seed)
    if words:
        ours, theirs = changed_share(engine, norvig, words)
        print(
            f"real words no story has (Cranfield, CISI): {len(words):,}; changed by the engine {ours:.1%}, "
            f"by Norvig {theirs:.1%}"
        )
    spelling = [*index_dir.glob("*.words"), *index_dir.glob("search_service_spelling_*")]
    total = sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())
    print(
        f"spelling files (words files, deletion index): {sum(p.stat().st_size for p in spelling) / 2**20:.1f} MiB "
        f"of the index's {total / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
