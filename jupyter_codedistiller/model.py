"""The Snippet record and its parts, defined once and shared by every layer.

Every interface (store, CLI, magic, API, panel, audit, export) speaks this
record's JSON. ``Snippet.to_dict`` / ``Snippet.from_dict`` round-trip it;
``SCHEMA_VERSION`` names the version of that JSON shape.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from .schema import RecordError as RecordError
from .schema import check, check_choices, fields_of, rule

# RecordError (raised for every record that does not fit) is declared in schema.py.

SCHEMA_VERSION = 1

# The enums of the records, declared once as types: the checks, the OpenAPI schema and the
# TypeScript types are derived from them (see schema.py, schemafiles.py).
SourceKind = Literal["git", "package", "local"]
OriginKind = Literal["verbatim", "assembled", "adapted", "generated"]
ValidationStatus = Literal["passed", "failed", "timeout", "skipped", "stale", "pending"]
ValidationMode = Literal["warm", "cold"]
ReviewStatus = Literal["unreviewed", "approved", "rejected"]
ReviewDecision = Literal["approved", "rejected"]
FlagKind = Literal["incorrect", "unsafe", "outdated", "license", "other"]
Lifecycle = Literal["active", "retired"]
OutputKind = Literal["figure", "text", "note"]
SourceLayer = Literal["repository", "sdist", "installed"]
SourceState = Literal["new", "ok", "error", "removed"]

SOURCE_KINDS = get_args(SourceKind)
ORIGIN_KINDS = get_args(OriginKind)
LLM_ORIGINS = ("adapted", "generated")
VALIDATION_STATUSES = get_args(ValidationStatus)
REVIEW_STATUSES = get_args(ReviewStatus)
REVIEW_DECISIONS = get_args(ReviewDecision)
FLAG_KINDS = get_args(FlagKind)
LIFECYCLES = get_args(Lifecycle)
OUTPUT_KINDS = get_args(OutputKind)
SOURCE_STATES = get_args(SourceState)
SHA256 = "[0-9a-f]{64}"


def utcnow() -> str:
    """The current UTC time as an ISO 8601 string with seconds precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def code_digest(code: str) -> str:
    """SHA-256 of the code, hex; the identity of a snippet's content."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def snippet_id(source_key: str, path: str, anchor: str) -> str:
    """A stable snippet id from where the code lives, not from the code itself."""
    digest = hashlib.sha256(f"{source_key}\0{path}\0{anchor}".encode()).hexdigest()
    return "cd-" + digest[:16]


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = cls.__dataclass_fields__
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Source:
    """Where the code was found: repository or package, commit, file and lines."""

    kind: SourceKind = "local"
    url: str = ""
    commit: str | None = None
    ref: str | None = None
    path: str = ""
    line_start: int | None = None
    line_end: int | None = None
    package: str | None = None
    version: str | None = None
    license: str = "unknown"
    repository: str | None = None
    source_id: str | None = None
    # Which layer of a package source the file came from: "repository" (the upstream repository
    # at the version's ``tag``, ``commit`` the tag's commit), "sdist" (the source distribution
    # ``sdist`` with ``sdist_sha256`` from ``index_url``) or "installed"; None for git sources.
    layer: SourceLayer | None = None
    tag: str | None = None
    sdist: str | None = None
    sdist_sha256: str | None = None
    index_url: str | None = None

    def __post_init__(self) -> None:
        check_choices(self, "source")

    def link(self) -> str | None:
        """A browsable link to the file at the pinned commit and lines, if one can be made."""
        base = self.repository or (self.url if self.kind == "git" else None)
        if not base or not base.startswith(("http://", "https://")):
            return None
        base = base.removesuffix(".git").rstrip("/")
        # A file link needs a ref the repository really has at the path we read: a commit (git
        # sources, the repository layer of a package) or a ref we checked out. A package's
        # version names no tag we saw, and an installed or sdist file's path need not be the
        # repository's: those link to the repository itself.
        ref = self.commit or (self.ref if self.kind == "git" else None)
        if not ref or not self.path:
            return base
        return f"{base}/blob/{ref}/{self.path}{self.anchor()}"

    def _range(self, one: str) -> str:
        if not self.line_start:
            return ""
        end = f"-{one}{self.line_end}" if self.line_end and self.line_end != self.line_start else ""
        return f"{one}{self.line_start}{end}"

    def anchor(self) -> str:
        """``#L10-L42`` for lines of a file, ``#cell3-cell4`` for cells of a notebook, or empty."""
        if not self.line_start:
            return ""
        return "#" + self._range("cell" if self.path.endswith(".ipynb") else "L")

    def where(self) -> str:
        """The file and its part as a person reads it: ``examples/km.py lines 10-42``, ``nb.ipynb cells 3-4``."""
        if not self.line_start:
            return self.path
        unit = "cell" if self.path.endswith(".ipynb") else "line"
        plural = "s" if self.line_end and self.line_end != self.line_start else ""
        return f"{self.path} {unit}{plural} {self._range('')}"


@dataclass
class Origin:
    """How the snippet was made; ``model`` and ``prompt_version`` when an LLM took part."""

    kind: OriginKind = "verbatim"
    model: str | None = None
    prompt_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choices(self, "origin")

    @property
    def llm(self) -> bool:
        return self.kind in LLM_ORIGINS


@dataclass
class Output:
    """One thing a validation run showed: a ``figure`` (a PNG kept in the library home under
    its SHA-256, see ``figures.py``), a ``text`` (the repr of the final expression or of a
    ``display()``ed object: always plain text, never HTML) or a ``note`` (what was left out)."""

    kind: OutputKind = "text"
    label: str = ""
    sha256: str | None = field(default=None, metadata=rule(pattern=SHA256))
    size: int = field(default=0, metadata=rule(minimum=0))
    width: int | None = None
    height: int | None = None
    text: str = field(default="", metadata=rule(max_length=4000))
    truncated: bool = False

    def __post_init__(self) -> None:
        check_choices(self, "output")


@dataclass
class Validation:
    """The outcome of running the snippet in the sandbox, and the environment it ran in."""

    status: ValidationStatus = "pending"
    reason: str | None = None
    when: str | None = None
    duration: float | None = None
    interpreter: str | None = None
    python_version: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    isolation: str | None = None
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    host: str | None = None  # the machine that ran it, when not this one (a cluster worker)
    worker: str | None = None  # that worker's Dask address
    outputs: list[Output] = field(default_factory=list, metadata=rule(max_length=16))
    mode: ValidationMode | None = field(default=None, metadata=rule(
        description="warm (forked from a pre-started interpreter) or cold; null when the snippet "
                    "never ran (skipped as extracted, or pending) and in older records"))
    mode_reason: str | None = field(default=None, metadata=rule(
        description="Why a batch's snippet was not served warm."))

    def __post_init__(self) -> None:
        check_choices(self, "validation")
        self.outputs = [o if isinstance(o, Output) else Output(**_pick(Output, o))
                        for o in self.outputs or []]

    @property
    def figures(self) -> list[Output]:
        return [o for o in self.outputs if o.kind == "figure" and o.sha256]


@dataclass
class ReviewEvent:
    """One human decision on one revision of a snippet."""

    status: ReviewDecision
    by: str
    when: str
    revision: int = field(metadata=rule(minimum=1))
    note: str = ""

    def __post_init__(self) -> None:
        check_choices(self, "review event")


@dataclass
class Review:
    """The review state of the current revision plus the full history."""

    status: ReviewStatus = "unreviewed"
    history: list[ReviewEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choices(self, "review")

    @staticmethod
    def for_revision(history: list[ReviewEvent], revision: int) -> Review:
        """The review state of ``revision``: the latest decision taken on that very revision."""
        status = "unreviewed"
        for event in history:
            if event.revision == revision:
                status = event.status
        return Review(status=status, history=list(history))


@dataclass
class Flag:
    """A warning raised on a snippet by a person; resolvable, never deleted."""

    kind: FlagKind
    reason: str
    by: str
    when: str
    revision: int | None = None
    id: int | None = None
    resolved: bool = False
    resolved_by: str | None = None
    resolved_when: str | None = None
    resolution: str | None = None

    def __post_init__(self) -> None:
        check_choices(self, "flag")


@dataclass
class Place:
    """Another place in the same source with (nearly) the same example, merged into a snippet."""

    path: str = ""
    anchor: str | None = None
    line_start: int | None = None
    line_end: int | None = None


@dataclass
class Snippet:
    """A distilled code example with its provenance, validation, review and flags."""

    id: str
    code: str
    title: str = ""
    summary: str = ""
    revision: int = field(default=1, metadata=rule(minimum=1))
    api: str = ""  # the qualified name of what the example documents, when it documents one
    context: str = ""  # prose around the example (docstring, headings, paragraph before): searched, not shown
    language: str = "python"
    tags: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    requirements: dict[str, str | None] = field(default_factory=dict)
    source: Source = field(default_factory=Source)
    origin: Origin = field(default_factory=Origin)
    validation: Validation = field(default_factory=Validation)
    review: Review = field(default_factory=Review)
    flags: list[Flag] = field(default_factory=list)
    lifecycle: Lifecycle = "active"
    created: str | None = None
    updated: str | None = None
    also_at: list[Place] = field(default_factory=list)  # near-duplicates in the same source, merged into it

    def __post_init__(self) -> None:
        check_choices(self, "")
        if not self.id:
            raise RecordError("id must not be empty")
        if self.revision < 1:
            raise RecordError("revision must be at least 1")

    @property
    def code_sha256(self) -> str:
        return code_digest(self.code)

    @property
    def open_flags(self) -> list[Flag]:
        return [f for f in self.flags if not f.resolved]

    @property
    def package_or_repository(self) -> str:
        """A short human name for where the snippet came from."""
        s = self.source
        if s.package:
            return s.package
        url = (s.repository or s.url or "").removesuffix(".git").rstrip("/")
        return url.rsplit("/", 1)[-1] if url else (s.source_id or "local")

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able data, keys in a stable order."""
        data = asdict(self)
        data["code_sha256"] = self.code_sha256
        data["schema_version"] = SCHEMA_VERSION
        return data

    def to_json(self) -> str:
        """One line of JSON with sorted keys: stable for diffs and JSON Lines files."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snippet:
        """Rebuild a Snippet from ``to_dict`` output; raises RecordError on bad data."""
        if not isinstance(data, dict):
            raise RecordError("a snippet must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(f"unsupported snippet schema_version {version!r}")
        try:
            review = dict(data.get("review") or {})
            review["history"] = [
                ReviewEvent(**_pick(ReviewEvent, e)) for e in review.get("history") or []
            ]
            values = _pick(cls, data)
            values.update(
                source=Source(**_pick(Source, data.get("source") or {})),
                origin=Origin(**_pick(Origin, data.get("origin") or {})),
                validation=Validation(**_pick(Validation, data.get("validation") or {})),
                review=Review(**_pick(Review, review)),
                flags=[Flag(**_pick(Flag, f)) for f in data.get("flags") or []],
                tags=list(data.get("tags") or []),
                imports=list(data.get("imports") or []),
                requirements=dict(data.get("requirements") or {}),
                also_at=[Place(**_pick(Place, p)) for p in data.get("also_at") or []],
            )
            snippet = cls(**values)
        except (TypeError, AttributeError) as exc:  # AttributeError: a part that is not an object
            raise RecordError(f"malformed snippet: {exc}") from None
        if not isinstance(snippet.code, str) or not isinstance(snippet.revision, int):
            raise RecordError("malformed snippet: code must be text and revision an integer")
        return snippet

    @classmethod
    def from_json(cls, text: str) -> Snippet:
        """A Snippet from one JSON line written elsewhere (an import): every field's type is
        checked too, so a record no interface can show never gets in."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
        except RecursionError:
            raise RecordError("not JSON a snippet can be: nested too deeply") from None
        try:
            check(cls, data, label=lambda path: f"snippet.{path}", whole="a snippet")
        except RecordError as exc:
            raise RecordError(f"malformed snippet: {exc}") from None
        return cls.from_dict(data)


# A git ref a source may be pinned to: what ``git check-ref-format`` allows, less a leading dash
# (it would read as an option), within 255 characters.
GIT_REF = r"(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)[^\s~^:?*\[\\\x00-\x1f\x7f]{1,255}"
REF_RULE = rule(max_length=255, pattern=GIT_REF,
                description="The branch or tag followed (git); null: the one checked out when added.")


@dataclass
class SourceSettings:
    """What a source was added with and what its refreshes keep between passes.

    Written by ``sources.add`` (what was added), ``refresh`` (extractor, layers, when the last
    error was), ``defaults`` (the default library's pacing) and ``generate`` (what the LLM pass
    tried). Keys written by a newer version that this one does not declare are kept aside in
    ``unknown`` and written back unchanged (``stored``); they are in no schema and no answer.
    """

    ref: str | None = field(default=None, metadata=REF_RULE)
    repository: str | None = field(default=None, metadata=rule(
        description="The browsable upstream repository, if known."))
    head_at_add: str | None = field(default=None, metadata=rule(description="git: the commit when added."))
    package: str | None = field(default=None, metadata=rule(description="pkg: the distribution's name."))
    version_at_add: str | None = field(default=None, metadata=rule(
        description="pkg: the installed version when added."))
    upstream: bool = field(default=True, metadata=rule(
        description="pkg: read the upstream repository or sdist, not only the installed files."))
    extractor: str | None = field(default=None, metadata=rule(
        description="The extractor version of the last refresh (a new one reads every file again)."))
    layers: list[str] = field(default_factory=list, metadata=rule(
        description="pkg: what the last refresh read, one line per layer."))
    layers_key: str | None = field(default=None, metadata=rule(
        description="pkg: the upstream layer's identity at the last refresh."))
    last_error_when: str | None = None
    default: bool = field(default=False, metadata=rule(description="Registered as part of the default library."))
    order: int = field(default=0, metadata=rule(minimum=0, description="Refresh order among default sources."))
    validate_per_pass: int | None = field(default=None, metadata=rule(
        minimum=0, description="Validate at most this many snippets per refresh (default sources), "
        "growing fourfold each refresh that left some waiting; null or 0 (older libraries): no limit."))
    llm: dict[str, Any] = field(default_factory=dict, metadata=rule(
        description="What the LLM pass tried (generate.remember), so it does not pay twice."))
    unknown: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "settings") -> SourceSettings:
        """Settings read back or given; raises RecordError (one line) when a declared key's
        value does not fit. Undeclared keys are kept in ``unknown``."""
        checked = check(cls, data, label=lambda path: f"{where}.{path}" if where else path,
                        whole=where or "settings")
        out = cls(**checked)
        names = {spec.name for spec in fields_of(cls)}
        out.unknown = {k: v for k, v in data.items() if k not in names}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The declared settings (what the API answers)."""
        return {spec.name: copy.deepcopy(getattr(self, spec.name)) for spec in fields_of(type(self))}

    def stored(self) -> dict[str, Any]:
        """What the library writes: the declared settings and the unknown keys kept aside."""
        return {**copy.deepcopy(self.unknown), **self.to_dict()}


@dataclass
class RegisteredSource:
    """A repository or package the distiller reads from, and how its last refresh went."""

    id: str
    kind: SourceKind
    url: str
    location: str | None = None
    added: str | None = None
    state: SourceState = "new"
    last_commit: str | None = None
    last_version: str | None = None
    last_refresh: str | None = None
    last_error: str | None = None
    license: str | None = None
    settings: SourceSettings = field(default_factory=SourceSettings)

    def __post_init__(self) -> None:
        check_choices(self, "source")
        if not isinstance(self.settings, SourceSettings):
            self.settings = SourceSettings.from_dict(self.settings, where=f"source {self.id} settings")

    def to_dict(self) -> dict[str, Any]:
        """The record as the API and the views show it (declared settings only)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"},
                "settings": self.settings.to_dict()}

    def stored(self) -> dict[str, Any]:
        """The record as the library keeps it: unknown settings of a newer version kept."""
        return {**self.to_dict(), "settings": self.settings.stored()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredSource:
        """A source read back; its settings are checked (RecordError names the bad key)."""
        return cls(**_pick(cls, data))


@dataclass
class ProgressEntry:
    """What a long job is doing, published under its key of the library's ``progress`` table
    (``distiller``: a refresh; ``daemon``: the background distiller) for other processes."""

    # The stage: fetch, extract, validate, store (a refresh's, per source), defaults, start,
    # done (the daemon's pass); idle, sleeping, failed, stopped when resting.
    step: str
    done: int = 0
    total: int = 0
    detail: str = ""
    source: str | None = None  # the source the stage works on
    pid: int | None = None  # the process that published it
    state: str | None = None  # the daemon's: refreshing, idle, error, stopped
    finished: str | None = None  # a refresh's end
    counts: dict[str, int] = field(default_factory=dict)  # what the finished refresh did
    interval: float | None = None  # the daemon's seconds between passes
    workers: int | None = None
    cycles: int | None = None  # passes the daemon finished
    last_cycle: str | None = None
    next_cycle_in: float | None = None
    last_error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # source id -> why its refresh failed
    stopped: str | None = None
    updated: str | None = None  # set by the library: when it was published
    alive: bool | None = None  # set by the library when read: whether ``pid`` still runs here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgressEntry:
        """A published entry read back; raises RecordError when it does not fit."""
        return cls(**check(cls, data, label=lambda path: f"progress.{path}", whole="a progress entry"))

    @property
    def resting(self) -> bool:
        return self.step in RESTING_STEPS or self.state in RESTING_STEPS


RESTING_STEPS = ("idle", "sleeping", "stopped", "done")
