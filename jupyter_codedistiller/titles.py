"""How a snippet reads in a result list: a short title, the API it shows, a summary.

Extraction makes titles with ``first_sentence`` / ``docstring_title``; every
interface (CLI, magic, widget, HTML, the server API and so the panel) shows
``headline(snippet)``, so the text is the same everywhere and records stored
by older versions (``name: first line`` titles, reST labels) read well too.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

TITLE_CHARS = 140
SUMMARY_CHARS = 240
# A title that is a bare reST directive, label or substitution says nothing to a reader.
_DIRECTIVE = re.compile(r"^\s*\.\.\s*(_[^:]*:|[\w:-]+::|\|[^|]*\|)")
# An inline role, reST (:func:`name`, :ref:`text <x>`) or MyST ({func}`name`): its text.
ROLE = re.compile(r"(?::[\w:.-]+:|\{[\w:.-]+\})`(?:[^`<]*<)?([^`>]*)>?`")
_SENTENCE_END = re.compile(r"(?<![A-Z])(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bet al)[.!?](?=\s+[A-Z(\[`\"']|\s*$)")
_PREFIX = re.compile(r"^([A-Za-z_][\w.]*)(\([^)]*\))?\s*:\s+(\S.*)$")


def _squash(text: str) -> str:
    return " ".join(ROLE.sub(r"\1", text or "").replace("``", "").split())


def first_sentence(text: str, limit: int = TITLE_CHARS) -> tuple[str, str]:
    """The first sentence of ``text``, whole (shortened at a word only past ``limit``), and the rest."""
    text = _squash(text)
    match = _SENTENCE_END.search(text)
    sentence, rest = (text[: match.end()], text[match.end():].strip()) if match else (text, "")
    if len(sentence) > limit:
        cut = sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
        sentence, rest = cut + "…", text
    return sentence.rstrip(), rest


def clean_title(title: str) -> str:
    """A title without reST directives or labels; empty when nothing readable is left."""
    lines = [line for line in (title or "").split("\n") if line.strip() and not _DIRECTIVE.match(line)]
    return _squash(" ".join(lines))


def docstring_title(qualname: str, first_paragraph: str) -> tuple[str, str]:
    """(title, rest of the paragraph) for a documented object: its first sentence, whole.

    The name leads the title only when the sentence alone is too short to say
    what the code shows (``Fit the model.``) or when there is no sentence.
    """
    sentence, rest = first_sentence(clean_title(first_paragraph))
    if not sentence or sentence.rstrip(".").replace(qualname, "").strip() in ("", "()"):
        return qualname, rest
    if len(sentence.split()) < 4:
        return f"{qualname}: {sentence}", rest
    return sentence, rest


@dataclass
class Headline:
    """What a result list shows of a snippet: title, API name (may be empty), summary."""

    title: str
    api: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(a: str, b: str) -> bool:
    norm = lambda s: re.sub(r"\W+", " ", s).strip().lower()  # noqa: E731
    return bool(norm(a)) and (norm(b).startswith(norm(a).rstrip("…")) or norm(a).startswith(norm(b)))


def headline(snippet: Any) -> Headline:
    """The one display text of ``snippet`` (a ``Snippet``) for every interface."""
    api = getattr(snippet, "api", "") or ""
    title = clean_title(snippet.title)
    match = _PREFIX.match(title)
    if match and (not api or api.endswith(match.group(1)) or match.group(1) in api):
        rest = match.group(3)
        title = rest if len(rest.split()) >= 4 else title
        api = api or match.group(1)
    if not title:
        title = api or snippet.id
    summary = _squash(snippet.summary)
    if _same(title, summary):
        summary = summary[len(title.rstrip("…")):].lstrip(" .:;-") if len(summary) > len(title) + 20 else ""
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return Headline(title=title, api=api, summary=summary)
