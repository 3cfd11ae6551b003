"""Extraction: find example code in a repository's files, without any LLM.

``is_candidate_file(path)`` says which repo-relative paths can hold examples;
``extract_file(path, data)`` returns their candidates (each already assembled
to run alone, see ``assemble``), the problems met (one line each, naming the
file) and how many candidates were dropped for holding credentials. It never
raises: binary, non-UTF-8, oversized, unparsable and malformed input each
become a problem line.

Kinds: ``script`` (a whole example script), ``gallery-cell`` (a ``# %%`` cell
of a gallery script), ``markdown`` (a fenced block), ``rst`` (``code-block``,
``code``, ``::`` and similar blocks), ``doctest`` (a ``>>>`` session in prose),
``notebook`` (the code cells under one markdown heading), ``docstring`` (the
``>>>`` examples of a public function, class or method).

Anchors name where a block lives, never what it holds, so they survive edits
elsewhere in the file: ``md:<heading-slug>:<n>`` / ``rst:<heading-slug>:<n>``
(n-th block under that heading), ``script``, ``cell:<title-slug>`` or
``cell:<n>``, ``nb:<heading-slug>:<n>`` (n-th section with that heading),
``doc:<qualname>``. For notebooks ``line_start``/``line_end`` are 1-based
cell numbers, not lines.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
import threading
import time
import warnings
from dataclasses import dataclass, field

from jupyter_codedistiller.distill import doctemplates
from jupyter_codedistiller.distill.assemble import (
    PROMPT,
    Block,
    Document,
    is_session,
    session_lines,
)
from jupyter_codedistiller.distill.candidates import Candidate
from jupyter_codedistiller.distill.secrets import contains_secret
from jupyter_codedistiller.model import Place
from jupyter_codedistiller.titles import ROLE, docstring_title

MAX_FILE_BYTES = 1_000_000
"""Files larger than this are skipped with a problem line."""

FILE_SECONDS = 10.0
"""Extraction of one file taking longer than this stops with a problem line (the time budget)."""

EXTRACTOR_VERSION = "9"
"""Bump when extraction or assembly changes what a file yields: sources are then re-extracted in full."""

SUMMARY_CHARS = 300
CONTEXT_CHARS = 1200

EXAMPLE_DIRS = frozenset({"examples", "example", "tutorials", "tutorial", "scripts", "gallery"})
DOC_DIRS = frozenset({"docs", "doc", "documentation"})
SKIP_DIRS = frozenset(
    {
        "tests", "test", "testing", "build", "dist", "node_modules", "site-packages",
        "dist-packages", "__pycache__", "_build", "venv", "vendor", "_vendor", "vendored",
        "third_party", "thirdparty", "__pypackages__", "htmlcov",
    }
)  # fmt: skip
SKIP_FILES = frozenset({"setup.py", "conftest.py", "noxfile.py", "conf.py", "fabfile.py"})
MARKDOWN_EXTS = (".md", ".markdown")
RST_EXTS = (".rst", ".rest", ".txt")

PYTHON_LANGS = frozenset(
    {"python", "py", "python3", "py3", "ipython", "ipython3", "pycon", "jupyter", "sage"}
)
# Names conventionally assumed imported in docstring examples (numpydoc: "import numpy as np").
CONVENTIONAL_IMPORTS = {
    "np": "import numpy as np",
    "pd": "import pandas as pd",
    "plt": "import matplotlib.pyplot as plt",
}


@dataclass
class ExtractResult:
    """What one file yielded: candidates, one-line problems, credential-bearing drops."""

    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    secrets: int = 0
    complete: bool = True  # False when the time budget stopped extraction: keep what is stored


@dataclass
class _Found:
    """A block of a document; with no anchor it only serves later blocks as a definition."""

    block: Block
    kind: str
    anchor: str = ""
    title: str = ""
    summary: str = ""
    api: str = ""
    context: str = ""
    alone: bool = False  # runs as it is (a whole pipeline): never assembled with earlier blocks


# ---------------------------------------------------------------- which files


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _in_example_dir(dirs: list[str]) -> bool:
    return any(d.lower() in EXAMPLE_DIRS or d.lower().startswith("demo") for d in dirs)


def is_candidate_file(path: str) -> bool:
    """True when the repo-relative ``path`` can hold examples worth extracting."""
    parts = _parts(path)
    if not parts:
        return False
    dirs, name = parts[:-1], parts[-1]
    lowered = [d.lower() for d in dirs]
    if any(d.startswith(".") or d in SKIP_DIRS or d.endswith(".egg-info") for d in lowered):
        return False
    lower = name.lower()
    if lower.startswith("."):
        return False
    if lower.endswith(".ipynb"):
        return True
    if lower.startswith("readme"):
        return lower == "readme" or lower.endswith(MARKDOWN_EXTS + RST_EXTS)
    if lower.endswith(MARKDOWN_EXTS + (".rst", ".rest")):
        return _in_example_dir(dirs) or any(d in DOC_DIRS for d in lowered)
    if lower.endswith(".txt"):
        return any(d in DOC_DIRS for d in lowered)
    if lower.endswith(".py"):
        if lower in SKIP_FILES or lower.startswith("test_") or lower.endswith("_test.py"):
            return False
        return _in_example_dir(dirs) or not any(d in DOC_DIRS for d in lowered)
    return False


# ---------------------------------------------------------------- entry point


class OverBudget(Exception):
    """Extraction of a file ran past its time budget."""


_budget = threading.local()


def check_budget() -> None:
    """Raise OverBudget when the file being extracted on this thread has used up its time."""
    deadline = getattr(_budget, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise OverBudget


def extract_file(path: str, data: bytes, *, seconds: float | None = None) -> ExtractResult:
    """Candidates found in one file; never raises (bad input becomes a problem line).

    Extraction is linear in the file's size and stops after ``seconds``
    (default ``FILE_SECONDS``): a pathological file becomes one problem line
    and yields nothing, never a stall.
    """
    result = ExtractResult()
    budget = FILE_SECONDS if seconds is None else seconds
    _budget.deadline = time.monotonic() + budget
    try:
        text = _decode(path, data, result)
        if text is not None:
            _extract_text(path, text, result)
            result.candidates = dedupe(result.candidates)
    except OverBudget:
        result.candidates, result.secrets, result.complete = [], 0, False
        result.problems.append(f"{path}: extraction took over the {budget:g} s budget, skipped")
    except Exception as exc:  # one bad file must not stop a refresh
        result.problems.append(f"{path}: extraction failed ({type(exc).__name__}: {exc}), skipped")
    finally:
        _budget.deadline = None
    return result


NEAR_DUPLICATE = 0.9
"""Two candidates whose sets of code lines overlap this much (Jaccard) are one example."""

_COMMON_LINE = 50  # a line in more candidates than this ("import numpy as np") proposes no pairs


def code_lines(code: str) -> frozenset[str]:
    """The code's distinct lines, whitespace-normalised, blank and comment-only lines left out."""
    lines = (" ".join(line.split()) for line in code.split("\n"))
    return frozenset(line for line in lines if line and not line.startswith("#"))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two line sets (1.0 for two empty ones)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def own_share(candidate: Candidate) -> float:
    """The share of a candidate's lines that are its own (not set-up taken from earlier)."""
    total = max(1, candidate.code.count("\n"))
    return 1.0 - min(candidate.context_lines, total) / total


def _place(candidate: Candidate) -> Place:
    return Place(path=candidate.path, anchor=candidate.anchor,
                 line_start=candidate.line_start, line_end=candidate.line_end)


def dedupe(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates with near-duplicates merged: one kept, the others listed in its ``also_at``.

    Same code (whitespace aside) or line sets at least ``NEAR_DUPLICATE``
    similar count as one example; the kept one is the one that loses least
    (more distinct lines), then the one with the larger share of its own
    lines, then the earliest. Pairs are only compared when they share a line
    few candidates have, so the cost stays linear.
    """
    kept: list[Candidate | None] = []
    sets: list[frozenset[str]] = []
    by_text: dict[str, int] = {}
    by_line: dict[str, list[int]] = {}
    for candidate in candidates:
        text = " ".join(candidate.code.split())
        lines = code_lines(candidate.code)
        match = by_text.get(text)
        if match is None:
            tried: set[int] = set()
            for line in lines:
                holders = by_line.get(line, ())
                if len(holders) > _COMMON_LINE:
                    continue
                for k in holders:
                    if k not in tried and kept[k] is not None:
                        tried.add(k)
                        if similarity(lines, sets[k]) >= NEAR_DUPLICATE:
                            match = k
                            break
                if match is not None:
                    break
        if match is None:
            index = len(kept)
            kept.append(candidate)
            sets.append(lines)
            by_text[text] = index
            for line in lines:
                by_line.setdefault(line, []).append(index)
            continue
        old = kept[match]
        assert old is not None
        if (len(lines), own_share(candidate)) > (len(sets[match]), own_share(old)):
            candidate.also_at = [*old.also_at, _place(old), *candidate.also_at]
            kept[match], sets[match] = candidate, lines
        else:
            old.also_at.extend([_place(candidate), *candidate.also_at])
    return [c for c in kept if c is not None]


def _decode(path: str, data: bytes, result: ExtractResult) -> str | None:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > MAX_FILE_BYTES:
        result.problems.append(
            f"{path}: {len(data) / 1e6:.1f} MB is over the {MAX_FILE_BYTES / 1e6:g} MB limit, skipped"
        )
        return None
    if b"\x00" in data[:8192]:
        result.problems.append(f"{path}: binary file, skipped")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.problems.append(f"{path}: not UTF-8 text, skipped")
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _extract_text(path: str, text: str, result: ExtractResult) -> None:
    parts = _parts(path)
    name = parts[-1].lower() if parts else ""
    if name.endswith(".ipynb"):
        _emit(path, _notebook(path, text, result), result)
    elif name.endswith(MARKDOWN_EXTS):
        _emit(path, _markdown(path, text, result), result)
    elif name.endswith(RST_EXTS):
        _emit(path, _rst(path, text, result), result)
    elif name == "readme":
        markdownish = "```" in text or re.search(r"^#{1,6} ", text, re.M)
        found = _markdown(path, text, result) if markdownish else _rst(path, text, result)
        _emit(path, found, result)
    elif name.endswith(".py"):
        if _in_example_dir(parts[:-1]):
            _emit(path, _script(path, text, result), result)
        else:
            _docstrings(path, text, result)


def _emit(path: str, found: list[_Found], result: ExtractResult) -> None:
    """Assemble each anchored block with the blocks before it and keep it unless it holds a secret."""
    document = Document([f.block for f in found])
    for i, item in enumerate(found):
        check_budget()
        if not item.anchor:
            continue
        made = document.own(i) if item.alone else document.assemble(i)
        if contains_secret(made.code):
            result.secrets += 1
            continue
        result.candidates.append(
            Candidate(
                path=path,
                anchor=item.anchor,
                code=made.code,
                kind=item.kind,
                title=item.title,
                summary=item.summary,
                line_start=item.block.line_start,
                line_end=item.block.line_end,
                api=item.api,
                context=item.context,
                origin="assembled" if made.assembled else "verbatim",
                imports=made.imports,
                context_lines=made.context_lines,
                skipped=made.skipped,
            )
        )


# ---------------------------------------------------------------- shared helpers


def slug(text: str) -> str:
    """A short URL-style slug of a heading ("Fitting by group" -> "fitting-by-group")."""
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return value or "section"


_INLINE = (
    (re.compile(r"!?\[([^\[\]]*)\]\([^()]*\)"), r"\1"),  # [text](url), images
    (ROLE, r"\1"),  # :func:`name`, :ref:`t <x>`, {func}`name`
    (re.compile(r"`+([^`]*)`+_{0,2}"), r"\1"),
    (re.compile(r"<[^<>]+>"), ""),  # html tags
    (re.compile(r"(\*\*|__|\*)(\S(?:.*?\S)?)\1"), r"\2"),
)


def clean_inline(text: str) -> str:
    """Heading or prose text with Markdown/reST inline markup removed, whitespace collapsed."""
    text = text[:2000]  # summaries are short; this also bounds the regexes' work
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def _shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _humanise(path: str) -> str:
    stem = _parts(path)[-1].rsplit(".", 1)[0] if _parts(path) else path
    return re.sub(r"^(plot|example|demo|tutorial)_", "", stem).replace("_", " ").replace("-", " ")


_SHELL_START = re.compile(r"^\s*(\$ |pip3? |conda |mamba |git |python3? -m |cd |export |sudo )")


def _make_block(numbered: list[tuple[int, str]]) -> tuple[Block | None, str]:
    """A Block from (line number, text) pairs, blank edges trimmed and dedented; parse error text."""
    while numbered and not numbered[0][1].strip():
        numbered = numbered[1:]
    while numbered and not numbered[-1][1].strip():
        numbered = numbered[:-1]
    if not numbered:
        return None, ""
    code = textwrap.dedent("\n".join(text for _, text in numbered)) + "\n"
    block = Block(code, numbered[0][0], numbered[-1][0])
    try:
        block.tree  # noqa: B018 -- parse now, cached on the block
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return None, getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    dropped = documented_output(block.tree, code.split("\n"))
    if dropped:
        kept = [pair for k, pair in enumerate(numbered) if k not in dropped]
        return _make_block(kept) if any(t.strip() for _, t in kept) else (None, "")
    return block, ""


_OUTPUT_COMMENT = re.compile(r"(?i)^\s*#\s*(?:>|out(?:put)?\s*(?:\[\d*\])?\s*:|results?\s*:|prints?\s*:)")
_SHOWS = frozenset({"print", "display", "pprint", "print_summary", "summary", "head", "tail",
                    "describe", "info", "show"})


def _shows_output(node: ast.stmt) -> bool:
    """True for a statement that prints or displays: ``print(x)``, ``df.head()``, a bare ``df``."""
    if not isinstance(node, ast.Expr):
        return False
    value = node.value
    if isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in _SHOWS
    return False


def documented_output(tree: ast.Module, lines: list[str]) -> set[int]:
    """0-based lines of ``lines`` that show output rather than code: stale printed results.

    A bare string right after a statement that prints (``cph.print_summary()``
    then ``\"\"\"<lifelines.CoxPHFitter: ...>\"\"\"``) and comment lines that say they are
    output (``#> 0.42``, ``# Output:`` and the comment lines after it).
    """
    dropped: set[int] = set()
    body = tree.body
    for before, node in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and _shows_output(before)):
            dropped.update(range(node.lineno - 1, (node.end_lineno or node.lineno)))
    header = False
    for k, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith("#"):
            header = False
            continue
        if header or _OUTPUT_COMMENT.match(line):
            dropped.add(k)
            header = header or not stripped[1:].lstrip().startswith(">")
    return dropped


def _code_block(
    path: str,
    numbered: list[tuple[int, str]],
    result: ExtractResult,
    labeled: bool,
    what: str = "Python block",
) -> Block | None:
    """Parse a block (a ``>>>`` session or plain code); a labeled block that fails is a problem."""
    text = "\n".join(t for _, t in numbered)
    if is_session(text):
        lines = [t for _, t in numbered]
        numbered = [(numbered[offset][0], code) for offset, code in session_lines(lines)]
    block, error = _make_block(numbered)
    if block is None and error and labeled and not _SHELL_START.match(text.lstrip("\n")):
        result.problems.append(f"{path}:{numbered[0][0]}: {what} does not parse ({error}), skipped")
    return block


_RUNNING = (ast.Call, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While)


def substantial(tree: ast.AST) -> bool:
    """True when code does something: a call, a definition or a loop (not only imports or a name)."""
    return any(isinstance(node, _RUNNING) for node in ast.walk(tree))


class _Sections:
    """Heading state of a prose document: current heading, path, ordinals and the last paragraph."""

    def __init__(self, path: str, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.stack: list[tuple[int, str]] = []
        self.doc_title = ""
        self.counts: dict[str, int] = {}
        self.paragraph: list[str] = []
        self.last_paragraph = ""

    def heading(self, level: int, text: str) -> None:
        text = clean_inline(text)
        if not text:
            return
        if not self.doc_title:
            self.doc_title = text
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        self.paragraph = []
        self.last_paragraph = ""

    def prose(self, line: str) -> None:
        if line.strip():
            self.paragraph.append(line.strip())
        elif self.paragraph:
            self.last_paragraph = " ".join(self.paragraph)
            self.paragraph = []

    def found(self, block: Block, kind: str, title: str = "") -> _Found:
        """A candidate for ``block`` under the current heading (a provider when trivial)."""
        self.prose("")
        item = _Found(block, kind)
        if not substantial(block.tree):
            return item
        heading = self.stack[-1][1] if self.stack else ""
        key = slug(heading) if heading else "top"
        self.counts[key] = self.counts.get(key, 0) + 1
        item.anchor = f"{self.prefix}:{key}:{self.counts[key]}"
        item.title = title or heading or self.doc_title or _humanise(self.path)
        trail = " > ".join(text for _, text in self.stack)
        item.summary = _shorten(clean_inline(self.last_paragraph) or trail or item.title)
        item.context = _shorten(f"{trail}. {clean_inline(self.last_paragraph)}", CONTEXT_CHARS)
        return item


def _session(path: str, lines: list[str], i: int, sections: _Sections, found: list[_Found],
             result: ExtractResult) -> int:
    """Take the ``>>>`` session starting at line ``i`` as a doctest block; returns the line after it."""
    j = _session_extent(lines, i)
    block = _code_block(path, [(k + 1, lines[k]) for k in range(i, j)], result, True)
    if block is not None:
        found.append(sections.found(block, "doctest"))
    return j


def _session_extent(lines: list[str], i: int) -> int:
    """Index after the ``>>>`` session starting at line ``i`` (blank lines end it unless a prompt follows)."""
    n = len(lines)
    j = i
    while j < n:
        if lines[j].strip():
            j += 1
            continue
        k = j
        while k < n and not lines[k].strip():
            k += 1
        if k < n and PROMPT.match(lines[k]):
            j = k
            continue
        break
    return j




# ---------------------------------------------------------------- Markdown

# Every pattern below is matched against a line with its trailing whitespace stripped and has no two
# quantifiers competing for the same characters: matching is linear in the line's length (a lazy group
# before ``\s*$`` made a 900 KB line of spaces take hours).
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_MYST_CODE = frozenset({"code-cell", "code-block", "code", "ipython", "jupyter-execute", "sourcecode"})


def _atx_text(text: str) -> str:
    """An ATX heading's text without its optional closing ``#`` run ("Title ##" -> "Title")."""
    bare = text.rstrip("#")
    if bare == text:
        return text
    return bare.rstrip() if not bare or bare[-1].isspace() else text


def _fence_language(info: str) -> str | None:
    """The language of a fence info string ("" when unlabeled, None when not code: ```{note})."""
    if not info:
        return ""
    if info.startswith("{"):
        name, _, rest = info[1:].partition("}")
        name = name.strip().lower()
        if name in _MYST_CODE:
            return (rest.split() or ["python"])[0].lower()
        name = name.lstrip(".").split()[0] if name.strip(".") else ""
        return name if name in PYTHON_LANGS else None
    return info.split()[0].lower().lstrip(".").split(",")[0]


def _markdown(path: str, text: str, result: ExtractResult) -> list[_Found]:
    lines = text.split("\n")
    sections = _Sections(path, "md")
    found: list[_Found] = []
    n = len(lines)
    i = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        end = next((k for k in range(1, n) if lines[k].strip() in ("---", "...")), None)
        if end is not None:
            i = end + 1
    while i < n:
        check_budget()
        line = lines[i]
        fence = _FENCE.match(line.rstrip())
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            marker = fence.group(2)
            j = i + 1
            while j < n:
                closing = lines[j].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                j += 1
            language = _fence_language(fence.group(3))
            if language is not None and (language == "" or language in PYTHON_LANGS):
                body = [(k + 1, lines[k]) for k in range(i + 1, j)]
                body = _drop_cell_options(body)
                block = _code_block(path, body, result, labeled=language != "")
                if block is not None:
                    found.append(sections.found(block, "markdown"))
            sections.prose("")
            i = j + 1
            continue
        atx = _ATX.match(line.rstrip())
        if atx:
            sections.heading(len(atx.group(1)), _atx_text(atx.group(2)))
            i += 1
            continue
        if (
            line.strip()
            and i + 1 < n
            and _SETEXT.match(lines[i + 1])
            and (i == 0 or not lines[i - 1].strip())
            and not line.startswith("    ")
        ):
            sections.heading(1 if lines[i + 1].strip()[0] == "=" else 2, line)
            i += 2
            continue
        if PROMPT.match(line):
            i = _session(path, lines, i, sections, found, result)
            continue
        sections.prose("" if line.startswith(("    ", "\t", "<", "|", "!")) else line)
        i += 1
    return found


def _drop_cell_options(body: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """MyST code-cell options (``:tags: [...]`` lines or a ``---`` YAML header) are not code."""
    k = 0
    if body and body[0][1].strip() == "---":
        end = next((m for m in range(1, len(body)) if body[m][1].strip() == "---"), None)
        if end is not None:
            return body[end + 1 :]
    while k < len(body) and re.match(r"^\s*:[\w-]+:", body[k][1]):
        k += 1
    return body[k:]


# ---------------------------------------------------------------- reStructuredText

_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
# A line about the file rather than the code (who wrote it, when, under what terms), e.g.
# "# Authors: The scikit-learn developers" or "Date: 2012-08-25": never a title or a summary.
_METADATA = re.compile(
    r"(?i)(copyright\b|\(c\)\s|licen[cs]e\b|spdx-|@author\b|-\*-\s*coding|coding[:=]|"
    r"(authors?|date|created( on| by)?|modified( on| by)?|last modified|maintainers?|e-?mail|"
    r"contact|version|revision|written by)\s*:|(flake8|noqa|pylint|isort|fmt|mypy|type)\s*:|"
    r"[\w./-]+\.(ipynb|py|md|rst|txt)$)")
# A comment block that marks its file as made by a tool (a notebook exported as a script):
# every line of that block is about the file.
_GENERATED = re.compile(r"(?i)\b(do not edit|auto-?generated|generated (by|from|with))\b")


def metadata_line(text: str) -> bool:
    """Whether one line of prose or comment names the file's authors, date, licence or encoding."""
    return bool(_METADATA.match(text.strip().lstrip("#").strip()))
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.-]{1,60}?)::(?:\s+(.*))?$")  # on a right-stripped line
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")
_CODE_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "highlight-block"})
_PYTHON_DIRECTIVES = frozenset({"ipython", "jupyter-execute", "plot", "testcode", "doctest", "testsetup"})
_IPYTHON_PSEUDO = re.compile(r"^\s*@(savefig|suppress|verbatim|doctest|okexcept|okwarning)\b")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_body(
    lines: list[str], start: int, base: int, options: bool
) -> tuple[list[tuple[int, str]], dict[str, str], int]:
    """Lines indented deeper than ``base`` from ``start``: (numbered body, directive options, end)."""
    n = len(lines)
    j = start
    found_options: dict[str, str] = {}
    if options:
        while j < n and lines[j].strip() and _indent(lines[j]) > base:
            option = _OPTION.match(lines[j])
            if not option:
                break
            found_options[option.group(1)] = option.group(2)
            j += 1
    body: list[tuple[int, str]] = []
    while j < n and (not lines[j].strip() or _indent(lines[j]) > base):
        body.append((j + 1, lines[j]))
        j += 1
    while body and not body[-1][1].strip():
        body.pop()
    return body, found_options, j


def _rst(path: str, text: str, result: ExtractResult) -> list[_Found]:
    lines = text.split("\n")
    sections = _Sections(path, "rst")
    levels: list[str] = []  # adornment styles in order of first use give heading levels
    found: list[_Found] = []
    n = len(lines)
    i = 0

    def heading(style: str, title: str) -> None:
        if style not in levels:
            levels.append(style)
        sections.heading(levels.index(style) + 1, title)

    while i < n:
        check_budget()
        line = lines[i]
        stripped = line.strip()
        if (
            _ADORNMENT.match(line)
            and i + 2 < n
            and lines[i + 1].strip()
            and _ADORNMENT.match(lines[i + 2])
            and lines[i + 2].strip()[0] == stripped[0]
        ):
            heading("over" + stripped[0], lines[i + 1])
            i += 3
            continue
        if (
            stripped
            and not line[0].isspace()
            and i + 1 < n
            and _ADORNMENT.match(lines[i + 1])
            and not stripped.startswith(("..", ">>>"))
            and (i == 0 or not lines[i - 1].strip())
            and len(lines[i + 1].strip()) >= min(len(stripped), 4)
        ):
            heading(lines[i + 1].strip()[0], stripped)
            i += 2
            continue
        directive = _DIRECTIVE.match(line.rstrip())
        if directive:
            i = _rst_directive(path, lines, i, directive, sections, found, result)
            continue
        if PROMPT.match(line):
            i = _session(path, lines, i, sections, found, result)
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            sections.prose(stripped[:-1] if stripped != "::" else "")
            body, _, j = _indented_body(lines, i + 1, _indent(line), options=False)
            if body:
                text_body = "\n".join(t for _, t in body)
                kind = "doctest" if is_session(text_body) else "rst"
                block = _code_block(path, body, result, labeled=False)
                if block is not None:
                    found.append(sections.found(block, kind))
            sections.prose("")
            i = max(j, i + 1)
            continue
        sections.prose(line)
        i += 1
    return found


def _rst_directive(
    path: str,
    lines: list[str],
    i: int,
    directive: re.Match[str],
    sections: _Sections,
    found: list[_Found],
    result: ExtractResult,
) -> int:
    """Handle the directive at line ``i``; return the index of the next line to read."""
    name = directive.group(2).lower()
    argument = (directive.group(3) or "").strip()
    if name not in _CODE_DIRECTIVES and name not in _PYTHON_DIRECTIVES:
        return i + 1  # admonitions and the like: their content is read as ordinary lines
    body, options, end = _indented_body(lines, i + 1, len(directive.group(1)), options=True)
    if name in _CODE_DIRECTIVES:
        language = argument.split()[0].lower() if argument else ""
        if language and language not in PYTHON_LANGS:
            return end
        labeled = bool(language)
    else:
        if name == "plot" and argument:  # ``.. plot:: path/to/script.py``
            return end
        labeled = True
        body = [(k, t) for k, t in body if not _IPYTHON_PSEUDO.match(t)]
    block = _code_block(path, body, result, labeled)
    if block is None:
        return end
    kind = "doctest" if name == "doctest" else "rst"
    if name == "testsetup":
        sections.prose("")
        found.append(_Found(block, kind))
    else:
        found.append(sections.found(block, kind, clean_inline(options.get("caption", ""))))
    return end


# ---------------------------------------------------------------- notebooks

_CELL_MAGICS_KEPT = frozenset({"time", "timeit", "capture", "prun"})


def _notebook_code(source: str) -> str | None:
    """A code cell as plain Python: IPython line magics and shell escapes dropped; None to skip."""
    lines = source.split("\n")
    first = next((k for k, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None
    if lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(" ")[0]
        if magic not in _CELL_MAGICS_KEPT:
            return None  # %%bash, %%R, %%html ...: not Python
        lines[first] = ""
    kept = []
    for line in lines:
        body = line.lstrip()
        if body.startswith(("%", "!")) and not body.startswith("!="):
            if line[: len(line) - len(body)]:
                kept.append(line[: len(line) - len(body)] + "pass")
            continue
        kept.append(line)
    return "\n".join(kept)


def _notebook(path: str, text: str, result: ExtractResult) -> list[_Found]:
    import nbformat  # lazy: only notebooks pay for it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
        cells = list(nb.cells)
    except Exception as exc:
        reason = str(exc).strip().split("\n")[0][:120]
        result.problems.append(
            f"{path}: not a valid notebook ({type(exc).__name__}: {reason}), skipped"
        )
        return []
    metadata = nb.get("metadata", {}) or {}
    language = (
        (metadata.get("kernelspec") or {}).get("language")
        or (metadata.get("language_info") or {}).get("name")
        or "python"
    )
    if str(language).lower() not in PYTHON_LANGS:
        result.problems.append(f"{path}: a {language} notebook, not Python, skipped")
        return []

    title = ""
    sections: list[dict] = [{"heading": "", "summary": "", "cells": []}]
    for number, cell in enumerate(cells, start=1):
        check_budget()
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if cell.get("cell_type") == "markdown":
            headings = [
                (k, _atx_text(m.group(2)))
                for k, line in enumerate(source.split("\n"))
                if (m := _ATX.match(line.rstrip()))
            ]
            if headings:
                k, heading = headings[-1]
                heading = clean_inline(heading)
                title = title or clean_inline(headings[0][1])
                after = "\n".join(source.split("\n")[k + 1 :])
                sections.append({"heading": heading, "summary": _first_paragraph(after), "cells": []})
            elif not sections[-1]["summary"]:
                sections[-1]["summary"] = _first_paragraph(source)
        elif cell.get("cell_type") == "code":
            code = _notebook_code(source)
            if code is None:
                continue
            block, error = _make_block([(number, line) for line in code.split("\n")])
            if block is None:
                if error:
                    result.problems.append(f"{path}: cell {number} does not parse ({error}), skipped")
                continue
            sections[-1]["cells"].append((number, block.code))

    found: list[_Found] = []
    counts: dict[str, int] = {}
    for section in sections:
        if not section["cells"]:
            continue
        numbers = [number for number, _ in section["cells"]]
        block = Block("\n".join(code for _, code in section["cells"]), numbers[0], numbers[-1])
        item = _Found(block, "notebook")
        if substantial(block.tree):
            key = slug(section["heading"]) if section["heading"] else "top"
            counts[key] = counts.get(key, 0) + 1
            item.anchor = f"nb:{key}:{counts[key]}"
            item.title = section["heading"] or title or _humanise(path)
            item.summary = _shorten(section["summary"] or title or item.title)
        found.append(item)
    cells = [cell for section in sections for cell in section["cells"]]
    if sum(1 for item in found if item.anchor) > 1:
        block = Block("\n".join(code for _, code in cells), cells[0][0], cells[-1][0])
        first = next((s["summary"] for s in sections if s["summary"]), "")
        found.append(_pipeline(block, "notebook", "nb:pipeline", title or _humanise(path), first))
    return found


def _pipeline(block: Block, kind: str, anchor: str, title: str, summary: str) -> _Found:
    """The whole notebook or gallery script as one snippet, run as it is."""
    return _Found(block, kind, anchor, title, _shorten(summary or title), alone=True)


def _first_paragraph(markdown: str) -> str:
    paragraph: list[str] = []
    for line in markdown.split("\n"):
        if not line.strip():
            if paragraph:
                break
            continue
        if line.lstrip().startswith(("#", "```", "<", "|", "!", "---")):
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return clean_inline(" ".join(paragraph))


# ---------------------------------------------------------------- example scripts

_CELL_MARKER = re.compile(r"^#\s?%%(.*)$|^#{20,}\s*$")
_COMMENT = re.compile(r"^\s*#(?!%%)")


def _parse(path: str, text: str, result: ExtractResult) -> ast.Module | None:
    """The module's syntax tree, or None with a problem line naming the file and line."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else path
        result.problems.append(f"{where}: syntax error ({getattr(exc, 'msg', exc)}), skipped")
        return None


def _script(path: str, text: str, result: ExtractResult) -> list[_Found]:
    tree = _parse(path, text, result)
    if tree is None:
        return []
    lines = text.split("\n")
    doc_title, doc_summary, doc_end = _script_doc(tree, lines)
    if any(_CELL_MARKER.match(line) for line in lines):
        return _gallery(path, lines, result, doc_title or _humanise(path), doc_summary, doc_end)
    if not substantial(tree):
        return []
    numbered = [(k + 1, line) for k, line in enumerate(lines)]
    block, _ = _make_block(numbered)
    if block is None:
        return []
    title = doc_title or _humanise(path)
    return [_Found(block, "script", "script", title, _shorten(doc_summary or title))]


def _script_doc(tree: ast.Module, lines: list[str]) -> tuple[str, str, int]:
    """Title and summary from the module docstring or the leading comment; line where it ends."""
    doc = ast.get_docstring(tree)
    if doc:
        paragraphs = [p for p in re.split(r"\n\s*\n", doc)
                      if p.strip() and not all(metadata_line(line) for line in p.split("\n") if line.strip())]
        if not paragraphs:
            return "", "", tree.body[0].end_lineno or 0
        title_lines = [
            line for line in paragraphs[0].split("\n") if line.strip() and not _ADORNMENT.match(line)
        ]
        title = clean_inline(title_lines[0]) if title_lines else ""
        rest = " ".join(title_lines[1:] + paragraphs[1:2])
        end = tree.body[0].end_lineno or 0
        return title, clean_inline(rest), end
    # The leading comment blocks (blank lines apart), before the first code line.
    blocks: list[list[str]] = [[]]
    for line in lines:
        if not line.strip():
            blocks.append([])
            continue
        if not line.startswith("#"):
            break
        blocks[-1].append(line)
    for block in blocks:
        if any(_GENERATED.search(line) for line in block):
            continue
        # "# # Heading": a Markdown heading of a notebook exported as a script
        comment = [body for body in (re.sub(r"^[#\s]+", "", line).strip() for line in block
                                     if not line.startswith("#!") and not metadata_line(line))
                   if body and not _ADORNMENT.match(body)]
        if comment:
            return clean_inline(comment[0]), clean_inline(" ".join(comment[1:])), 0
    return "", "", 0


def _gallery(
    path: str, lines: list[str], result: ExtractResult, title: str, summary: str, doc_end: int
) -> list[_Found]:
    """One candidate per ``# %%`` cell, titled by the cell's comment text."""
    # cells as (marker text, first line index, end index); the header has no marker
    cells: list[tuple[str | None, int, int]] = []
    start, marker_text = 0, None
    for k, line in enumerate(lines):
        match = _CELL_MARKER.match(line)
        if match:
            cells.append((marker_text, start, k))
            start, marker_text = k + 1, (match.group(1) or "")
    cells.append((marker_text, start, len(lines)))

    found: list[_Found] = []
    counts: dict[str, int] = {}
    pending: list[str] = []
    untitled = 0
    for marker, first, end in cells:
        check_budget()
        if marker is None:  # the header: docstring, imports, setup
            first = max(first, doc_end)
        is_text = marker is not None and bool(re.match(r"\s*\[(markdown|md)\]", marker))
        text: list[str] = []
        k = first
        while k < end and (not lines[k].strip() or _COMMENT.match(lines[k])):
            if lines[k].strip() and not metadata_line(lines[k]):
                text.append(lines[k].strip().lstrip("#").strip())
            k += 1
        if is_text:
            pending.extend(text)
            continue
        block, error = _make_block([(m + 1, lines[m]) for m in range(k, end)])
        if block is None:
            if error:
                result.problems.append(f"{path}:{k + 1}: cell does not parse ({error}), skipped")
            pending.extend(text)
            continue
        words = [t for t in pending + text if t and not _ADORNMENT.match(t)]
        pending = []
        label = clean_inline((marker or "").strip().lstrip("#").strip())
        item = _Found(block, "gallery-cell")
        found.append(item)
        if not substantial(block.tree):
            continue
        if marker is None:
            item.anchor, item.title, item.summary = "cell:intro", title, _shorten(summary or title)
            continue
        cell_title = label or (clean_inline(words[0].lstrip("#").strip()) if words else "")
        if cell_title:
            key = slug(cell_title)
            counts[key] = counts.get(key, 0) + 1
            item.anchor = f"cell:{key}" + (f":{counts[key]}" if counts[key] > 1 else "")
            item.title = cell_title
            rest = words[1:] if not label else words
            item.summary = _shorten(clean_inline(" ".join(rest)) or f"{title}: {cell_title}")
        else:
            untitled += 1
            item.anchor = f"cell:{untitled}"
            item.title = f"{title} (cell {untitled})"
            item.summary = _shorten(summary or title)
    if sum(1 for item in found if item.anchor) > 1:
        whole, _ = _make_block([(k + 1, line) for k, line in enumerate(lines)])
        if whole is not None:
            found.append(_pipeline(whole, "script", "pipeline", title, summary))
    return found


# ---------------------------------------------------------------- docstrings


def module_name(path: str) -> str | None:
    """The dotted module name of a package source file ("src/pkg/mod.py" -> "pkg.mod")."""
    parts = _parts(path)
    if not parts or not parts[-1].endswith(".py"):
        return None
    parts[-1] = parts[-1][:-3]
    if len(parts) > 1 and parts[0] in ("src", "lib", "python"):
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts and all(p.isidentifier() for p in parts):
        return ".".join(parts)
    return None


def _module_imports(tree: ast.Module, path: str, module: str | None) -> dict[str, str]:
    """Name -> the import statement binding it at module level (relative imports made absolute)."""
    package = module if path.endswith("__init__.py") else (module or "").rpartition(".")[0]
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                found[name] = ast.unparse(ast.Import(names=[alias]))
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                if not package:
                    continue
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                if not base:
                    continue
                source = ".".join(base + ([source] if source else []))
            for alias in node.names:
                if alias.name != "*":
                    found[alias.asname or alias.name] = ast.unparse(
                        ast.ImportFrom(module=source, names=[alias], level=0)
                    )
    return found


def _module_defines(tree: ast.Module) -> frozenset[str]:
    """Names bound by top-level definitions and assignments of a module (imports aside)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return frozenset(names)


_DOC_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode)::[ \t]*(\w*)$")  # right-stripped
_DOC_LANGUAGES = frozenset({"", "python", "py", "python3", "ipython", "ipython3", "pycon"})


def _directive_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(offset, code) of the first Python ``.. code::`` / ``.. code-block::`` block in docstring lines."""
    for i, line in enumerate(lines):
        m = _DOC_DIRECTIVE.match(line.rstrip())
        if not m or m.group(2).lower() not in _DOC_LANGUAGES:
            continue
        indent, body_indent, out = len(m.group(1)), None, []
        for j in range(i + 1, len(lines)):
            text = lines[j]
            if not text.strip():
                out.append((j, ""))
                continue
            depth = len(text) - len(text.lstrip())
            if depth <= indent:
                break
            if body_indent is None:
                if text.strip().startswith(":"):  # directive options such as :linenos:
                    continue
                body_indent = depth
            out.append((j, text[body_indent:] if depth >= body_indent else text.lstrip()))
        while out and not out[-1][1]:
            out.pop()
        if any(code for _, code in out):
            if any(code.lstrip().startswith(">>>") for _, code in out):
                return [(out[k][0], code) for k, code in session_lines([c for _, c in out])]
            return out
    return []


def _docstrings(path: str, text: str, result: ExtractResult) -> None:
    """``>>>`` and ``.. code::`` examples of public functions, classes and methods, one candidate each."""
    if ">>>" not in text and ".. code" not in text:
        return
    tree = _parse(path, text, result)
    if tree is None:
        return
    module = module_name(path)
    imports: dict[str, str] | None = None
    defined: frozenset[str] = frozenset()
    seen: dict[str, int] = {}
    texts: doctemplates.Texts | None = None
    assigned: doctemplates.Strings = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        nonlocal imports, defined, texts, assigned
        for node in body:
            check_budget()
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            qualname = prefix + node.name
            doc = ast.get_docstring(node, clean=False)
            first_line = node.body[0].lineno
            if node.decorator_list or not prefix:
                if texts is None:  # a docstring a template makes (doctemplates), worked out once per file
                    texts = doctemplates.module_texts(tree)
                    assigned = doctemplates.doc_assignments(tree, texts)
                made = doctemplates.made_docstring(node, texts, assigned if not prefix else {})
                if made is not None:
                    doc, first_line = made
            if doc and (">>>" in doc or ".. code" in doc):
                if imports is None:
                    imports = _module_imports(tree, path, module)
                    defined = _module_defines(tree)
                seen[qualname] = seen.get(qualname, 0) + 1
                anchor = f"doc:{qualname}" + (f":{seen[qualname]}" if seen[qualname] > 1 else "")
                found = _docstring_example(path, node, doc, first_line, qualname, anchor, result)
                if found is not None:
                    prelude = _prelude(found.block, imports, defined, module)
                    _emit(path, prelude + [found], result)
            if isinstance(node, ast.ClassDef):
                visit(node.body, qualname + ".")

    visit(tree.body, "")


def _docstring_example(
    path: str, node: ast.AST, doc: str, first_line: int, qualname: str, anchor: str, result: ExtractResult
) -> _Found | None:
    lines = doc.split("\n")
    numbered = [(first_line + offset, code) for offset, code in session_lines(lines)]
    if not numbered:
        numbered = [(first_line + offset, code) for offset, code in _directive_lines(lines)]
    if not numbered:
        return None
    block, error = _make_block(numbered)
    if block is None:
        if error:
            result.problems.append(
                f"{path}:{numbered[0][0]}: docstring example of {qualname} does not parse"
                f" ({error}), skipped"
            )
        return None
    if not substantial(block.tree):
        return None
    cleaned = inspect.cleandoc(doc)
    paragraphs = [p for p in re.split(r"\n\s*\n", cleaned) if p.strip()]
    # A template may give only a section ("Examples" and its underline, or a session): no title.
    lead = paragraphs[0] if paragraphs and not re.search(r"^\s*(-{3,}|={3,}|>>>)", paragraphs[0], re.M) else ""
    title, rest = docstring_title(qualname, lead)
    # prose, not a section underline, directive, session or literal (indented) block
    prose = [p for p in paragraphs[1:]
             if not re.search(r"^\s*(-{3,}|\.\.|>>>)", p, re.M) and not p.lstrip("\n")[:1].isspace()]
    summary = _shorten(clean_inline(rest or (prose[0] if prose else "")))
    public = ".".join(itertools.takewhile(lambda p: not p.startswith("_"), (module_name(path) or "").split(".")))
    api = f"{public}.{qualname}" if public else qualname
    prose = _docstring_prose(cleaned)
    params = _parameter_names(node)
    context = _shorten(f"Parameters: {' '.join(params)}. {prose}", CONTEXT_CHARS) if params else prose
    return _Found(block, "docstring", anchor, title, summary, api, context)


def _parameter_names(node: ast.AST) -> list[str]:
    """The parameter names of a function, or of a class's ``__init__`` (not self/cls), which a
    long docstring's prose may describe past what search keeps of it."""
    if isinstance(node, ast.ClassDef):
        node = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == "__init__"), None)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return [n for n in names if n not in ("self", "cls") and not n.startswith("_")][:60]


def _docstring_prose(doc: str) -> str:
    """A docstring's words for search: its prose, parameter names and their descriptions,
    without the example code and the section underlines."""
    kept, in_session = [], False
    for line in doc.split("\n"):
        in_session = bool(PROMPT.match(line)) or (in_session and bool(line.strip()))
        if not in_session and not re.match(r"^\s*(-{3,}|={3,}|\.\. [\w-]+::.*)\s*$", line):
            kept.append(line)
    return _shorten(clean_inline("\n".join(kept)), CONTEXT_CHARS)


def _prelude(
    block: Block, imports: dict[str, str], defined: frozenset[str], module: str | None
) -> list[_Found]:
    """An import block for names the example uses from its own module or by numpydoc convention."""
    lines: list[str] = []
    for name in sorted(block.analysis.needs):
        if name in imports:
            lines.append(imports[name])
        elif name in defined and module:
            lines.append(f"from {module} import {name}")
        elif name in CONVENTIONAL_IMPORTS:
            lines.append(CONVENTIONAL_IMPORTS[name])
    if not lines:
        return []
    return [_Found(Block("\n".join(sorted(set(lines))) + "\n"), "docstring")]
