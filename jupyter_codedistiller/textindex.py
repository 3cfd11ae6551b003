"""What the full-text index holds, and how a person's query maps onto it safely.

Every string a person can type becomes a valid FTS5 expression: words are
pulled out with a Unicode-aware pattern and each is quoted, so FTS5 operators,
quotes, ``NEAR``, ``C++``, emoji or unbalanced quotes can never reach the
query parser as syntax.
"""

from __future__ import annotations

import keyword
import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset(keyword.kwlist) | {"self", "cls", "print", "None", "True", "False"}
MAX_TERMS = 16
STOPWORDS = frozenset(
    "a an and are as at be by for from how i in into is it of on or per the this to using "
    "use via what with".split()
)


def query_terms(query: str) -> list[str]:
    """The searchable words of ``query``, lower-cased, in order, without repeats or stopwords."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query or ""):
        seen.setdefault(word.lower(), None)
    terms = list(seen)
    content = [t for t in terms if t not in STOPWORDS]
    return (content or terms)[:MAX_TERMS]


def match_expression(query: str, *, any_term: bool = False, prefix_last: bool = False) -> str | None:
    """An FTS5 MATCH expression for ``query``, or None when it holds no searchable word.

    All terms must match unless ``any_term``; with ``prefix_last`` the last
    term also matches as a prefix, so that search-as-you-type finds
    ``kaplan`` from ``kap``. Common English words are left out.
    """
    terms = query_terms(query)
    if not terms:
        return None
    parts = [f'"{t}"' for t in terms]
    if prefix_last and len(terms[-1]) >= 3:
        parts[-1] = f'("{terms[-1]}" OR "{terms[-1]}"*)'
    return (" OR " if any_term else " AND ").join(parts)


def identifiers(code: str, limit: int = 400) -> str:
    """The identifiers used in ``code`` and their camelCase / snake_case parts, space-separated."""
    seen: dict[str, None] = {}
    for name in _IDENTIFIER.findall(code):
        if name in _STOP or len(name) < 2:
            continue
        seen.setdefault(name, None)
        for part in name.split("_"):
            for piece in _CAMEL.findall(part):
                if len(piece) > 1:
                    seen.setdefault(piece.lower(), None)
        if len(seen) >= limit:
            break
    return " ".join(seen)
