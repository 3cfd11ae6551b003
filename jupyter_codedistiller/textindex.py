"""What the full-text index holds, and how a person's query maps onto it safely.

Every string a person can type becomes a valid FTS5 expression: words are
pulled out with a Unicode-aware pattern and each is quoted, so FTS5 operators,
quotes, ``NEAR``, ``C++``, emoji or unbalanced quotes can never reach the
query parser as syntax.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset(keyword.kwlist) | {"self", "cls", "print", "None", "True", "False"}
MAX_TERMS = 16
STOPWORDS = frozenset(
    "a about after all an and any are as at be before between by can could do does each for from "
    "get give has have how i if in into is it its me my of on or our over per should show so some "
    "than that the their then there these they this those to up use using via want we what when "
    "where which while who why will with would you your".split()
)


# British spellings written the American way, by their endings and letter groups (never a list
# of words): normalise -> normalize, analyse -> analyze, tumour -> tumor, centre -> center,
# catalogue -> catalog, haemoglobin -> hemoglobin, oestrogen -> estrogen, diarrhoea -> diarrhea.
# Applied alike to what is indexed and to queries, a word the rules change by mistake ("noise" ->
# "noize") still meets itself; the Porter stemmer then joins the word forms (normalized, -ation).
_END = r"(?![a-z])"  # the end of a word, also inside a snake_case name
_SPELLINGS = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"(?<=[a-z]{2})is(e|es|ed|ing|er|ers|ation|ations|able)" + _END, r"iz\1"),
    (r"(?<=[a-z]{2})ys(e|ed|ing|er|ers)" + _END, r"yz\1"),
    (r"(?<=[a-z]{2}[bdglmnpv])our(s|ed|ing|able|al|ite|ites)?" + _END, r"or\1"),
    (r"(?<=[a-z]{2}i)our(s|al|ally)?" + _END, r"or\1"),
    (r"(?<=[a-z]{2}[bt])r(e|es|ed)" + _END, lambda m: {"e": "er", "es": "ers", "ed": "ered"}[m.group(1).lower()]),
    (r"(?<=[a-z]{3})ogue(s)?" + _END, r"og\1"),
    (r"(?<=[cdfhkmp])ae(?=[a-z])", "e"),
    (r"(?<![a-z])oe(?=[sd][a-z])", "e"),
    (r"(?<![a-z])foet", "fet"),
    (r"rrhoe", "rrhe"),
))


def american(text: str) -> str:
    """``text`` with British spellings written the American way (the changed letters lower case)."""
    for pattern, repl in _SPELLINGS:
        text = pattern.sub(repl, text)
    return text


def query_words(query: str) -> list[str]:
    """Every word of ``query``, lower-cased and spelt the American way, in order (stopwords too)."""
    return [american(w.lower()) for w in _WORD.findall(query or "")]


def query_terms(query: str) -> list[str]:
    """The searchable words of ``query``, lower-cased, in order, without repeats or stopwords."""
    seen: dict[str, None] = {}
    for word in query_words(query):
        seen.setdefault(word, None)
    terms = list(seen)
    content = [t for t in terms if t not in STOPWORDS]
    return (content or terms)[:MAX_TERMS]


def quoted(text: str) -> str:
    """``text`` as one FTS5 string (a word, or a phrase of several): never syntax."""
    return '"' + text.replace('"', '""') + '"'


@dataclass
class Unit:
    """One meaningful word of a query (or two written as one, ``log rank`` / ``logrank``) and the
    FTS5 expressions that account for it: its spellings, and words the library relates to it."""

    words: tuple[str, ...]
    spellings: list[str]
    related: list[str] = field(default_factory=list)
    known: bool = True
    roots: list[str] = field(default_factory=list)  # other forms of the word's root (FTS5 prefixes)

    def expression(self, *, expanded: bool = False, prefix: bool = False, roots: bool = False) -> str:
        parts = list(self.spellings)
        if prefix and len(self.words[-1]) >= 3:
            parts.append(quoted(self.words[-1]) + "*")
        if roots or expanded:
            parts += self.roots
        if expanded:
            parts += [quoted(r) for r in self.related]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


@dataclass
class SearchPlan:
    """The units of a query; every unit must be accounted for by a full match."""

    units: list[Unit]

    @property
    def words(self) -> list[str]:
        return [w for u in self.units for w in u.words]

    @property
    def unknown(self) -> list[str]:
        return [w for u in self.units if not u.known for w in u.words]

    @property
    def expandable(self) -> bool:
        return any(u.related for u in self.units)

    def expression(self, units: list[Unit] | None = None, *, expanded: bool = False,
                   prefix_last: bool = False, roots: bool = False) -> str:
        chosen = self.units if units is None else units
        return " AND ".join(
            u.expression(expanded=expanded, prefix=prefix_last and u is self.units[-1], roots=roots)
            for u in chosen
        )


def match_expression(query: str, *, any_term: bool = False, prefix_last: bool = False) -> str | None:
    """An FTS5 MATCH expression for ``query``, or None when it holds no searchable word.

    All terms must match unless ``any_term``; with ``prefix_last`` the last
    term also matches as a prefix, so that search-as-you-type finds
    ``kaplan`` from ``kap``. Common English words are left out.
    """
    terms = query_terms(query)
    if not terms:
        return None
    plan = SearchPlan([Unit((t,), [quoted(t)]) for t in terms])
    if any_term:
        return " OR ".join(u.expression(prefix=prefix_last and u is plan.units[-1]) for u in plan.units)
    return plan.expression(prefix_last=prefix_last)


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


def api_names(code: str, limit: int = 60) -> list[str]:
    """Qualified names of what ``code`` uses from its imports, e.g. ``lifelines.KaplanMeierFitter``
    and ``statsmodels.stats.multitest.multipletests`` (aliases resolved); empty if it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    aliases: dict[str, str] = {}
    statements = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    # imports are nearly always at the top level: walk the whole tree for them only when not
    nested = code.count("import") > sum(len(n.names) if isinstance(n, ast.Import) else 1 for n in statements)
    for node in ast.walk(tree) if nested else statements:
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    if not aliases:
        return []
    found: dict[str, None] = {}
    for node in ast.walk(tree):
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in aliases:
            found.setdefault(".".join([aliases[node.id], *reversed(parts)]), None)
            if len(found) >= limit:
                break
    names = [name for name in found if "." in name]
    return [n for n in names if not any(m.startswith(n + ".") for m in names)]


def split_words(names: Iterable[str]) -> str:
    """Dotted, snake_case and camelCase names as words: the names, their parts and the parts' pieces."""
    seen: dict[str, None] = {}
    for name in names:
        for part in name.split("."):
            seen.setdefault(part, None)
            for piece in part.split("_"):
                for bit in _CAMEL.findall(piece):
                    if len(bit) > 1:
                        seen.setdefault(bit.lower(), None)
    return " ".join(seen)
