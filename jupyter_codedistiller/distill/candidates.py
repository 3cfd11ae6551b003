"""A candidate: a piece of example code found in one file, before it becomes a Snippet."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Place

CANDIDATE_KINDS = ("script", "gallery-cell", "markdown", "rst", "doctest", "notebook", "docstring")


@dataclass
class Candidate:
    """Example code found in a file, already made to run alone where possible.

    ``anchor`` is stable across edits elsewhere in the file (a heading slug and
    ordinal, a function's qualified name, a cell ordinal under a heading); with
    the source id and ``path`` it derives the snippet id, so it must not depend
    on the code itself.
    """

    path: str
    anchor: str
    code: str
    kind: str
    title: str = ""
    summary: str = ""
    line_start: int | None = None
    line_end: int | None = None
    origin: str = "verbatim"  # verbatim | assembled
    tags: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    api: str = ""  # qualified name of the documented object (docstring examples)
    context: str = ""  # prose around the example, for search: docstring text, headings, paragraph before
    context_lines: int = 0  # lines taken from earlier in the document so that it runs alone
    skipped: str = ""  # why it is not worth running ("needs too much context: ..."); code is its own
    also_at: list[Place] = field(default_factory=list)  # near-duplicates merged into it
