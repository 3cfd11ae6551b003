"""The API's request and response bodies, declared once as records (see ``schema.py``).

Handlers check request bodies with ``schema.check`` against these records; the answers
they write are these records' JSON. ``schemafiles.py`` derives the OpenAPI components in
``openapi.yaml`` and the panel's TypeScript types (``labextension/src/records.ts``) from
them, and the tests check every answer against that schema. Nothing here imports Jupyter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..badges import Badge
from ..library import LibraryStatus
from ..model import (
    REF_RULE,
    SHA256,
    Flag,
    FlagKind,
    RegisteredSource,
    ReviewDecision,
    ReviewEvent,
    Snippet,
)
from ..schema import rule
from ..settings import Policy
from ..textview import HistoryEvent, ProvenanceRow
from ..titles import Headline

MAX_TEXT = 2000
MAX_SOURCES = 100
SOURCE_NAME = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

# ---------------------------------------------------------------- requests


@dataclass
class FlagBody:
    """POST snippets/{id}/flags."""

    kind: FlagKind
    reason: str = field(metadata=rule(max_length=MAX_TEXT, nonblank=True))


@dataclass
class ResolveBody:
    """POST snippets/{id}/flags/{flag_id}/resolve."""

    note: str = field(default="", metadata=rule(max_length=MAX_TEXT))


@dataclass
class ReviewBody:
    """POST snippets/{id}/reviews."""

    status: ReviewDecision
    note: str = field(default="", metadata=rule(max_length=MAX_TEXT))
    revision: int | None = field(default=None, metadata=rule(
        minimum=1, description="If given, must be the current revision (what the reviewer saw)."))


@dataclass
class SourceBody:
    """POST sources."""

    source: str = field(metadata=rule(max_length=MAX_TEXT, nonblank=True))
    name: str | None = field(default=None, metadata=rule(max_length=64, pattern=SOURCE_NAME))
    ref: str | None = field(default=None, metadata=REF_RULE)


@dataclass
class RefreshBody:
    """POST refresh."""

    sources: list[str] = field(default_factory=list, metadata=rule(
        max_length=MAX_SOURCES, items=rule(pattern=SOURCE_NAME), description="Source ids; default: all."))
    validate: bool = True


REQUESTS = (FlagBody, ResolveBody, ReviewBody, SourceBody, RefreshBody)

# ---------------------------------------------------------------- answers


@dataclass
class ErrorAnswer:
    """Every error: one line for a person."""

    message: str = field(metadata=rule(nonblank=True))


@dataclass
class SnippetView(Snippet):
    """The Snippet record (``Snippet.to_dict``) plus what every view shows."""

    code_sha256: str = field(default="", metadata=rule(pattern=SHA256))
    schema_version: int = 1
    badges: list[Badge] = field(default_factory=list)
    link: str | None = field(default=None, metadata=rule(
        description="The file at the pinned commit and lines, if browsable."))
    where: str = field(default="", metadata=rule(description="A short name of the package or repository."))
    headline: Headline = field(default_factory=lambda: Headline("", "", ""), metadata=rule(
        description="What every view shows (titles.headline), made once on the server side."))
    provenance: list[ProvenanceRow] = field(default_factory=list, metadata=rule(
        description="Where it came from, how it was made and checked (textview.provenance_rows)."))
    history: list[HistoryEvent] = field(default_factory=list, metadata=rule(
        description="Its reviews and flags, oldest first (textview.history_events)."))
    validation_note: str | None = field(default=None, metadata=rule(
        description="Why running it needs a second thought; null when it passed validation."))


@dataclass
class SearchResult(SnippetView):
    """One ranked result."""

    rank: int = field(default=1, metadata=rule(minimum=1))
    score: float = 0.0
    missing: list[str] = field(default_factory=list, metadata=rule(
        description="Query words this result does not account for (empty for a full match)."))


@dataclass
class Building:
    """How far the library is from built (``Library.building``)."""

    snippets: int
    validated: int
    pending: int
    sources_waiting: int


@dataclass
class SearchAnswer:
    """GET search."""

    query: str
    limit: int
    offset: int
    filters: dict[str, str]
    has_more: bool
    building: Building | None = field(metadata=rule(
        description="How far the library is from built (null when nothing waits)."))
    building_note: str = field(metadata=rule(
        description="The same as a sentence (textview.building_note; empty when built); the panel shows it."))
    notice: str | None = field(metadata=rule(
        description="Set when no snippet matches every word: \"no snippet matches 'zzqx'; closest:\"."))
    results: list[SearchResult]


@dataclass
class SnippetDetail(SnippetView):
    """GET snippets/{id}: a snippet as the panel inserts it."""

    marker: str = field(default="", metadata=rule(pattern="# codedistiller: .*"))
    cell_source: str = field(default="", metadata=rule(description="The marker line, a newline, then the code."))
    cell_metadata: dict[str, Any] = field(default_factory=dict, metadata=rule(
        description="What the panel stores in the inserted cell's metadata.codedistiller."))
    policy: Policy = "open"
    insert_blockers: list[str] = field(default_factory=list, metadata=rule(
        description="What would make the magic ask for --force under the team policy."))
    insert_warnings: list[str] = field(default_factory=list)


@dataclass
class FlagAnswer:
    """POST flags, POST resolve: the flag and the snippet as it is now."""

    flag: Flag
    snippet: SnippetView


@dataclass
class ReviewAnswer:
    """POST reviews: the review event and the snippet as it is now."""

    review: ReviewEvent
    snippet: SnippetView


@dataclass
class SourcesAnswer:
    """GET sources: removed ones left out."""

    sources: list[RegisteredSource]


@dataclass
class SourceAnswer:
    """POST sources: the source as registered."""

    source: RegisteredSource


@dataclass
class RefreshJob:
    """A ``codedistiller refresh`` child process started through the API (``service.RefreshJob``)."""

    id: int
    pid: int
    state: Literal["running", "finished", "failed"]
    sources: list[str]
    validate: bool
    started: str
    finished: str | None
    exit_code: int | None
    log_tail: list[str] = field(metadata=rule(description="Last lines of the child's output."))


@dataclass
class RefreshAnswer:
    """POST refresh: the job started."""

    job: RefreshJob


@dataclass
class Status(LibraryStatus):
    """GET status: ``Library.status()``, the team policy, the API's refresh job, the status line."""

    policy: Policy
    refresh: RefreshJob | None
    status_line: str = field(metadata=rule(
        description="The library in one line (textview.status_line); the panel shows it."))


ANSWERS = (ErrorAnswer, SearchAnswer, SnippetDetail, FlagAnswer, ReviewAnswer, SourcesAnswer,
           SourceAnswer, RefreshAnswer, Status)
