"""Escapes for text that came from outside (repositories, notebooks, users) on its way out.

Plain text for a terminal (``visible``) and Markdown (``markdown_text``). Both
keep a value on its line: a line break inside a title or a file name is
written as ``\\n``, so it cannot forge lines of output. HTML has
``htmlview.esc``.
"""

from __future__ import annotations

import html
import re

# C0 controls (line breaks and tabs too), DEL, C1 controls, the Unicode line and paragraph
# separators and the bidi embeddings, overrides and isolates (they reorder what a reader sees).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]")
# What CommonMark / GitHub Markdown would read as markup: emphasis, code, links and images,
# tables, strike-through, headings, escapes. HTML's three specials are written as entities.
_MARKDOWN = re.compile(r"([\\`*_\[\]{}|!~#])")


def visible(text: object) -> str:
    """``text`` on one line with every control character written as a visible escape
    (``\\n``, ``\\x1b``, ``\\u202e``): a terminal obeys none of them."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text if text is not None else ""))


def visible_lines(text: object) -> list[str]:
    """``text`` split at its line breaks, each line ``visible``: for multi-line content
    (code, a run's output) whose lines are meant to be lines."""
    return [visible(line) for line in str(text if text is not None else "").splitlines()]


def markdown_text(text: object) -> str:
    """``text`` as literal Markdown on one line: no HTML (``<img onerror>`` is written as
    ``&lt;img onerror&gt;``), no links, images, emphasis, code or table cells of its own,
    and no control characters."""
    one_line = " ".join(str(text if text is not None else "").split())
    escaped = _MARKDOWN.sub(r"\\\1", visible(one_line))
    return html.escape(escaped, quote=False)
