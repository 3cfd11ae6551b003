"""Vocabulary the library teaches itself: words that keep company in its own documents.

At refresh time every snippet's words (its prose and the names its code uses)
are counted; two distinctive words that occur together in several snippets
much more often than chance ("benjamini" and "fdr_bh", "survival" and
"kaplan") become related. Queries are expanded with related words when their
own words do not find enough. No word list is written by hand and nothing is
downloaded: what is related depends only on what the library holds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from .textindex import STOPWORDS, query_terms

_TOKEN = re.compile(r"[^\W_]{2,}", re.UNICODE)
PER_DOCUMENT = 30  # the rarest words of a document that take part in pairs
MIN_TOGETHER = 2
MIN_WEIGHT = 0.3
RELATED_PER_TERM = 5
MAX_DOCUMENTS = 20_000
# Numbers and short numbered names (1e5, x1, df2) say nothing about what code does; nor do
# numbered names met with several numbers in the library (data1, data2), see ``related``.
_NUMBERED = re.compile(r"\d\w*|[a-z]{1,2}\d+", re.IGNORECASE)
_NUMBER_SUFFIX = re.compile(r"([a-z]+?)(\d+)")


def normal(word: str) -> str:
    """The form under which a word is counted and looked up (lower case, a plural ``s`` off)."""
    word = word.lower()
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def words(text: str) -> set[str]:
    """The countable words of ``text``."""
    return {normal(w) for w in _TOKEN.findall(text or "")
            if w.lower() not in STOPWORDS and not _NUMBERED.fullmatch(w)}


def related(documents: Iterable[set[str]]) -> dict[str, list[tuple[str, float]]]:
    """term -> [(related term, weight)] mined from the documents' word sets, strongest first.

    Weight is the cosine of the two words' document sets, ``together / sqrt(df_a * df_b)``;
    only words in at most ``max(20, 5%)`` of the documents count (common words relate to everything).
    """
    # The same words twice (a method documented on two classes alike) are one piece of evidence.
    docs = list(dict.fromkeys(frozenset(d) for d in itertools.islice(documents, MAX_DOCUMENTS)))
    df = Counter(w for d in docs for w in d)
    numbers: dict[str, set[str]] = {}
    for w in df:
        if m := _NUMBER_SUFFIX.fullmatch(w):
            numbers.setdefault(m.group(1), set()).add(m.group(2))
    for w in [w for w in df if _NUMBERED.fullmatch(w)
              or ((m := _NUMBER_SUFFIX.fullmatch(w)) and len(numbers[m.group(1)]) > 1)]:
        del df[w]  # a generated name (result1, result2), not a word
    ceiling = max(20, len(docs) // 20)
    pairs: Counter[tuple[str, str]] = Counter()
    for d in docs:
        distinctive = sorted((w for w in d if MIN_TOGETHER <= df.get(w, 0) <= ceiling), key=lambda w: (df[w], w))
        pairs.update(itertools.combinations(sorted(distinctive[:PER_DOCUMENT]), 2))
    out: dict[str, list[tuple[str, float]]] = {}
    for (a, b), together in pairs.items():
        if together < MIN_TOGETHER:
            continue
        weight = together / math.sqrt(df[a] * df[b])
        if weight >= MIN_WEIGHT:
            out.setdefault(a, []).append((b, weight))
            out.setdefault(b, []).append((a, weight))
    return {t: sorted(r, key=lambda x: (-x[1], x[0]))[:RELATED_PER_TERM] for t, r in out.items()}


# "Words Words Words (ABC)": an acronym defined where it is first used, in prose.
_DEFINITION = re.compile(r"((?:[A-Za-z][A-Za-z'-]*\s+){1,6}?)\(([A-Z][A-Za-z]{1,5}?)s?\)")
ACRONYM_WEIGHT = 2.0  # above any mined weight (a cosine, at most 1): marks a definition


def phrase_key(terms: Iterable[str]) -> str:
    """The form under which a phrase of query terms is looked up (each word as ``normal``)."""
    return " ".join(normal(t) for t in terms)


def definitions(text: str) -> Iterator[tuple[str, str]]:
    """(phrase, acronym) for each acronym ``text`` defines, e.g. ("receiver operating
    characteristic", "roc") from "Receiver Operating Characteristic (ROC)": the words right
    before the parentheses whose initials (hyphenated parts too) spell it."""
    for m in _DEFINITION.finditer(text[:MAX_DEFINED_TEXT]):
        acronym = m.group(2)
        if sum(c.isupper() for c in acronym) < 2:
            continue  # "(Tarashansky)", "(see)"
        words = m.group(1).split()
        for k in range(1, len(words) + 1):
            tail = words[-k:]
            initials = "".join(p[0] for w in tail for p in w.split("-") if p)
            if initials.lower() == acronym.lower():
                yield " ".join(tail).lower(), acronym.lower()
                break
            if len(initials) > len(acronym):
                break


MAX_DEFINED_TEXT = 20_000


def acronyms(texts: Iterable[str], df: Counter[str], documents: int) -> dict[str, tuple[str, ...]]:
    """acronym -> the query terms of the one phrase the library defines it as.

    Left out: an acronym defined as two different phrases (``mse``), one that is itself a word
    of its phrase, one shorter than two terms, and one in more than ``max(20, 5%)`` of the
    documents (``pd``: pandas, not partial dependence)."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for text in texts:
        for phrase, acronym in definitions(text):
            terms = tuple(query_terms(phrase))
            if len(terms) >= 2 and acronym not in terms:
                found.setdefault(acronym, {}).setdefault(phrase_key(terms), terms)
    ceiling = max(20, documents // 20)
    return {a: next(iter(p.values())) for a, p in found.items() if len(p) == 1 and df.get(a, 0) <= ceiling}
