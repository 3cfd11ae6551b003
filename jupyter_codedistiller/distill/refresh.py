"""The incremental refresh: from registered sources to stored, validated snippets.

For each source, in order:

1. **fetch**: git sources fetch their branch and move the checkout to it;
   package sources read the installed distribution's version.
2. **plan**: the files to extract. The first time (or after a history rewrite,
   a new extractor version, or ``full=True``) every file; afterwards only the
   files that ``git diff`` says were added, modified or renamed since the last
   distilled commit, and those deleted. A package is extracted again in full
   when its version changed, not at all otherwise.
3. **extract** the planned candidate files, drop code that repeats code already
   in the source, and build Snippets whose ids derive from (source, path,
   anchor), so they stay stable across refreshes.
4. **store**, in ONE library transaction: upsert the snippets (a changed code
   gets the next revision), retire every snippet its file no longer yields
   (all of a deleted file's), and record the distilled commit or version on
   the source. Killed at any point, the library holds either all of it or
   none of it; the next refresh redoes what was lost.
5. **stale**: passed snippets whose imported distributions changed version
   since they passed become ``stale``.
6. **validate** pending and stale snippets in parallel in the sandbox, each
   result in its own short transaction (recorded only if the snippet is still
   at the revision that ran). Locally, steps 1-5 are done for every source
   first, then all of their snippets are validated by one set of servers, one
   batch per source (``sandbox.validate_batches``); on a cluster, source by source.

A source that fails (unreachable, not a repository any more, uninstalled) is
recorded with state ``error`` and its message; the others go on. Progress goes
to the ``progress`` callback and, throttled, into the library (key
``distiller``) for other processes to show.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..library import Library, LibraryError
from ..model import (
    Origin,
    ProgressEntry,
    RegisteredSource,
    Snippet,
    Source,
    Validation,
    code_digest,
    snippet_id,
    utcnow,
)
from . import sources
from .sources import SourceError
from .tree import Tree, at_commit, at_version

if TYPE_CHECKING:
    from .candidates import Candidate

PROGRESS_KEY = "distiller"
PROGRESS_INTERVAL = 1.0  # seconds between progress writes into the library
SOURCES_IN_FLIGHT = 4  # sources a cluster refresh works on at once (one extracting, the others validating)
FIRST_LOOK = 4  # each source's most wanted snippets, validated before any source's others
PASS_GROWTH = 4  # a source's per-pass validation limit grows this much each pass that left some waiting
UPSTREAM_LAYERS = ("sdist", "repository")  # a package source's layers read from upstream, not installed
SCRIPT_KINDS = ("script", "gallery-cell", "notebook")  # run with their own folder on the path


class Progress(Protocol):
    """Called as work advances: ``stage`` is fetch, extract, store, validate or done; ``source``
    names the source the step belongs to ("" for the run as a whole), ``detail`` what it is at."""

    def __call__(self, stage: str, done: int, total: int, detail: str, source: str = "") -> None: ...


COUNT_NAMES = ("added", "updated", "revived", "unchanged", "retired", "stale",
               "passed", "failed", "timeout", "skipped", "secrets")


@dataclass
class SourceReport:
    """What one refresh did to one source."""

    source_id: str
    kind: str = ""
    pin: str | None = None  # the commit or version distilled
    full: bool = False  # every file was extracted, not only the changed ones
    files: int = 0  # files extracted
    added: int = 0
    updated: int = 0
    revived: int = 0
    unchanged: int = 0
    retired: int = 0
    stale: int = 0
    passed: int = 0
    failed: int = 0
    timeout: int = 0
    skipped: int = 0
    pending: int = 0  # left unvalidated
    secrets: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in (*COUNT_NAMES, "files", "pending")}


@dataclass
class RefreshReport:
    """What one refresh did, source by source."""

    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys((*COUNT_NAMES, "files", "pending"), 0)
        for rep in self.sources:
            for name, value in rep.counts().items():
                totals[name] += value
        return totals

    @property
    def problems(self) -> list[str]:
        return [p for rep in self.sources for p in rep.problems]

    @property
    def errors(self) -> dict[str, str]:
        return {rep.source_id: rep.error for rep in self.sources if rep.error}

    def summary(self) -> str:
        """The closing line: what was added, updated, retired, and how validation went."""
        t = self.totals()
        n = len(self.sources)
        line = (f"{n} source{'s' * (n != 1)}: {t['added']} added, {t['updated']} updated, "
                f"{t['retired']} retired, {t['passed']} passed, {t['failed']} failed, "
                f"{t['timeout']} timed out, {t['skipped']} skipped")
        if t["revived"]:
            line += f", {t['revived']} revived"
        if t["stale"]:
            line += f", {t['stale']} stale"
        if t["pending"]:
            line += f"; {t['pending']} not validated"
        if t["secrets"]:
            line += f"; {t['secrets']} with secrets not stored"
        if self.problems:
            line += f"; {len(self.problems)} problem{'s' * (len(self.problems) != 1)}"
        if self.errors:
            line += f"; {len(self.errors)} source{'s' * (len(self.errors) != 1)} failed"
        return line + f" ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {"sources": [asdict(r) for r in self.sources], "totals": self.totals(),
                "problems": self.problems, "errors": self.errors, "seconds": self.seconds}


# ---------------------------------------------------------------- progress


class _Publisher:
    """Forwards progress to the callback at once and to the library at most once a second."""

    def __init__(self, library: Library, callback: Progress | None) -> None:
        self.library = library
        self.callback = callback
        self.last = 0.0
        self.step = ""

    def __call__(self, source_id: str, stage: str, done: int, total: int, detail: str = "") -> None:
        if self.callback is not None:
            try:
                self.callback(stage, done, total, detail, source_id)
            except Exception:  # a broken progress display must not stop the refresh
                self.callback = None
        now = time.monotonic()
        if stage != self.step or done >= total or now - self.last >= PROGRESS_INTERVAL:
            self.last, self.step = now, stage
            self.library.set_progress(PROGRESS_KEY, ProgressEntry(
                source=source_id, step=stage, done=done, total=total, detail=detail, pid=os.getpid()))


# ---------------------------------------------------------------- planning


@dataclass
class Plan(Tree):
    """What to read for one source this time (``files``: the changed ones, or every one when
    ``full``), on the tree at its pin (``tree.py``), and what the snippets will pin."""

    deleted: list[str] = field(default_factory=list)
    full: bool = False
    # A package source's upstream layer (repository at the tag, or sdist) and the files read
    # from it (those the installed distribution lacks); one line per layer for `sources`.
    upstream: Any = None
    upstream_files: set[str] = field(default_factory=set)
    layers: list[str] = field(default_factory=list)
    layers_key: str | None = None

    def root_of(self, path: str) -> Path:
        """The folder ``path`` is read from: the upstream layer's or the plan's root."""
        if path in self.upstream_files and self.upstream is not None:
            return Path(self.upstream.root)
        return self.root

    def data_folder(self, s: Snippet) -> str | None:
        """The folder a script-like snippet may read its data files from (read-only, on its path),
        unless it holds a copy of the package that would shadow the one that is to run."""
        if s.origin.details.get("extracted_from") not in SCRIPT_KINDS or s.source.path in self.virtual:
            return None
        folder = (self.root_of(s.source.path) / s.source.path).parent
        if not folder.is_dir():
            return None
        if any((folder / m).is_dir() or (folder / f"{m}.py").is_file() for m in self.dist_modules):
            return None
        return str(folder)


def _extractor_version() -> str | None:
    from . import extract

    version = getattr(extract, "EXTRACTOR_VERSION", None)
    return str(version) if version is not None else None


def _plan_git(library: Library, src: RegisteredSource, full: bool) -> Plan:
    checkout = Path(src.location) if src.location else sources.checkout_path(library, src.id)
    ref = src.settings.ref
    if not (checkout / ".git").is_dir():  # never cloned here, or the checkout was deleted
        checkout.parent.mkdir(parents=True, exist_ok=True)
        sources.clone(src.url, checkout, ref=ref)
    sources.clear_stale_locks(checkout)  # a refresh killed during git left them (we hold its lock)
    commit = sources.fetch(checkout, src.url, ref)
    plan = at_commit(Plan, checkout, commit, ref=ref, repository=src.settings.repository)
    old = src.last_commit
    if not full and old and old != commit:
        try:
            changes = sources.changes_between(checkout, old, commit)
            plan.files, plan.deleted = changes.changed, changes.deleted
        except SourceError:  # the last distilled commit is gone (a re-clone): read everything
            full = True
    if full or not old:
        plan.full = True
        plan.files = sources.tracked_files(checkout, commit)
    return plan


def _in_package(path: str, modules: set[str]) -> bool:
    """Whether a repository path is the package's own code (``pkg/...``, ``src/pkg/...``)."""
    parts = path.split("/")
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    return (len(parts) > 1 and parts[0] in modules) or parts[0].removesuffix(".py") in modules


def fetch_upstream_enabled(library: Library, src: RegisteredSource) -> bool:
    """Whether a package source reads its upstream layers: the library setting
    ``fetch_upstream`` (``CODEDISTILLER_FETCH_UPSTREAM`` overrides it) and the source's own."""
    from ..settings import SettingsError, load_settings

    if not src.settings.upstream:
        return False
    try:
        return load_settings(library.path.parent).fetch_upstream != "off"
    except SettingsError:
        return True


def _plan_package(library: Library, src: RegisteredSource, full: bool) -> Plan:
    import importlib.metadata as metadata

    from . import upstream

    info = sources.package_info(src.settings.package or src.url.removeprefix("pkg:"))
    plan = at_version(Plan, info)
    try:
        dist = metadata.distribution(info.name)
    except metadata.PackageNotFoundError:
        dist = None
    files = set(info.files) | set(info.virtual)
    if fetch_upstream_enabled(library, src) and dist is not None:
        layer = upstream.upstream_layer(library.path.parent, src.id, info.name, info.version,
                                        dist.metadata)
        if layer.ok:
            plan.upstream = layer
            listed = (upstream.repository_files(layer) if layer.name == "repository"
                      else upstream.sdist_files(layer))
            # The installed files win: they are what runs. The upstream layer adds what the wheel
            # lacks (examples, docs, tutorials), not its own copy of the package's modules.
            plan.upstream_files = {p for p in listed
                                   if p not in files and not _in_package(p, plan.dist_modules)}
            files |= plan.upstream_files
            plan.layers_key = f"{layer.name}:{layer.commit or layer.sdist_sha256}"
            shim = upstream.run_folder(layer, info.root, plan.dist_modules)
            if shim is not None:  # the installed package, with the upstream's data beside it
                plan.python_path.insert(0, str(shim))
        plan.layers += layer.lines()
    else:
        why = ("--no-upstream" if not src.settings.upstream
               else "fetch_upstream is off")
        plan.layers.append(f"upstream: not fetched ({why})")
    plan.layers.append(f"installed: {info.name} {info.version} at {info.root}")
    if full or src.last_version != info.version or src.settings.layers_key != plan.layers_key:
        plan.full = True
        plan.files = sorted(files)
    return plan


# ---------------------------------------------------------------- extraction


def _snippet(src: RegisteredSource, plan: Plan, c: Candidate) -> Snippet:
    from .imports import imports_of, requirements_for

    imports = list(c.imports) or imports_of(c.code)
    layer = plan.upstream if c.path in plan.upstream_files else None
    where: dict[str, Any] = {"commit": plan.commit}
    if src.kind == "package":
        where = {"commit": None, "layer": "installed"}
        if layer is not None:
            where = {"commit": layer.commit, "layer": layer.name, "tag": layer.tag,
                     "sdist": layer.sdist, "sdist_sha256": layer.sdist_sha256,
                     "index_url": layer.index_url}
            if layer.name == "repository":
                where["repository"] = sources.browsable_repository(layer.url) or layer.url
    return Snippet(
        id=snippet_id(src.id, c.path, c.anchor),
        code=c.code,
        title=c.title or f"{c.path} ({c.anchor})",
        summary=c.summary,
        api=c.api,
        context=c.context,
        tags=list(c.tags),
        imports=imports,
        requirements=requirements_for(imports),
        source=Source(**{
            "kind": src.kind, "url": src.url, "ref": plan.ref, "path": c.path,
            "line_start": c.line_start, "line_end": c.line_end, "package": plan.package,
            "version": plan.version, "license": plan.license, "repository": plan.repository,
            "source_id": src.id, **where,
        }),
        origin=Origin(kind=c.origin, details={"extracted_from": c.kind, "anchor": c.anchor,
                                              "context_lines": c.context_lines}),
        validation=Validation(status="skipped", reason=c.skipped) if c.skipped else Validation(),
        also_at=list(c.also_at),
    )


def _extract(src: RegisteredSource, plan: Plan, rep: SourceReport, publish: _Publisher,
             stored: dict[str, tuple[str, str]]) -> tuple[list[Snippet], set[str]]:
    """Snippets from the planned files, and the paths whose extraction broke (kept as they are)."""
    from . import exports, extract

    files = [p for p in plan.files if extract.is_candidate_file(p)]
    broken: set[str] = set()
    found: list[Candidate] = []
    for i, path in enumerate(files, 1):
        publish(src.id, "extract", i, len(files), path)
        root = plan.root_of(path)
        size = _size(root / path) if path not in plan.virtual or root != plan.root else 0
        if size > extract.MAX_FILE_BYTES:  # not even read: read_file would cut it anyway
            rep.problems.append(f"{src.id}: {path}: {size / 1e6:.1f} MB is over the "
                                f"{extract.MAX_FILE_BYTES / 1e6:g} MB limit, skipped")
            rep.files += 1
            continue
        try:
            data = sources.read_file(root, path, plan.virtual if root == plan.root else None)
        except OSError as exc:
            rep.problems.append(f"{src.id}: {path}: cannot read: {exc.strerror or exc}")
            broken.add(path)
            continue
        try:
            result = extract.extract_file(path, data)
        except Exception as exc:  # an extractor bug must not stop the other files
            rep.problems.append(f"{src.id}: {path}: extraction failed: {type(exc).__name__}: {exc}")
            broken.add(path)
            continue
        rep.files += 1
        if not result.complete:  # stopped by its time budget: what was stored from it stays
            broken.add(path)
        rep.secrets += result.secrets
        rep.problems += [p if p.startswith(f"{src.id}:") else f"{src.id}: {p}"
                         for p in result.problems]
        found += result.candidates
    # Code already stored from a file not extracted this time wins over a new copy of it.
    replanned = set(plan.files) | set(plan.deleted)
    kept_digests = {digest for path, digest in stored.values() if path not in replanned}
    snippets: dict[str, Snippet] = {}
    names = exports.Exports(lambda path: _read_or_none(plan, path))
    for c in extract.dedupe(found):
        if code_digest(c.code) in kept_digests:
            continue
        if c.kind == "docstring" and c.api:  # the name it is used by: pandas.qcut, not ...tile.qcut
            c.api = names.public_name(c.path, c.anchor.split(":")[1], c.api)
        s = _snippet(src, plan, c)
        if s.id in snippets:
            rep.problems.append(f"{src.id}: {c.path}: two examples share the anchor {c.anchor!r}; "
                                "kept the first")
            continue
        snippets[s.id] = s
    # File names and contents come from the repository: keep every problem one printable line.
    rep.problems[:] = [_printable(p) for p in rep.problems]
    return list(snippets.values()), broken


def _read_or_none(plan: Plan, path: str) -> bytes | None:
    """A planned source's file (as ``sources.read_file`` reads it), or None when it cannot be read."""
    root = plan.root_of(path)
    try:
        return sources.read_file(root, path, plan.virtual if root == plan.root else None)
    except (OSError, ValueError):
        return None


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _printable(text: str) -> str:
    """``text`` with line breaks and other control characters written as escapes."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


# ---------------------------------------------------------------- storing


def _store(library: Library, src: RegisteredSource, plan: Plan, snippets: list[Snippet],
           broken: set[str], stored: dict[str, tuple[str, str]], rep: SourceReport,
           extractor: str | None) -> None:
    """Upsert, retire and record the source's new pin: one transaction."""
    new_ids = {s.id for s in snippets}
    if plan.full:
        gone = {sid for sid, (path, _) in stored.items() if path not in broken}
    else:
        touched = (set(plan.files) | set(plan.deleted)) - broken
        gone = {sid for sid, (path, _) in stored.items() if path in touched}
    # LLM-made snippets are not re-extracted: only their file's disappearance retires them.
    deleted = set(plan.deleted)
    present = set(plan.files) | set(plan.virtual)
    gone -= {sid for sid in library.llm_ids_for_source(src.id)
             if (path := stored.get(sid, ("",))[0]) not in deleted and (not plan.full or path in present)}
    with library.transaction():
        current = library.source(src.id)
        if current.state == "removed":
            raise SourceError(f"source {src.id} was removed during the refresh")
        counts = library.upsert(snippets)
        rep.retired = library.retire(sorted(gone - new_ids))
        current.last_commit = plan.commit
        current.last_version = plan.version
        current.license = plan.license
        current.state = "ok"
        current.last_refresh = utcnow()
        current.last_error = None
        current.settings.last_error_when = None
        if extractor is not None:
            current.settings.extractor = extractor
        if current.kind == "package":
            current.settings.layers = list(plan.layers)
            current.settings.layers_key = plan.layers_key
        library.save_source(current)
    for name in ("added", "updated", "revived", "unchanged"):
        setattr(rep, name, counts.get(name, 0))


def _record_error(library: Library, source_id: str, message: str) -> None:
    try:
        current = library.source(source_id)
    except LibraryError:
        return
    if current.state == "removed":
        return
    current.state = "error"
    current.last_error = message
    current.settings.last_error_when = utcnow()
    library.save_source(current)


# ---------------------------------------------------------------- validation


def _snippets_with(library: Library, source_id: str, statuses: Iterable[str]) -> list[Snippet]:
    """Active snippets of a source whose validation is in ``statuses``."""
    return [s for status in statuses
            for s in library.all(include_retired=False, source=source_id, validation=status)]


def mark_stale(library: Library, source_id: str, interpreter: str | None = None,
               provided: dict[str, str] | None = None) -> int:
    """Passed snippets whose imported distributions changed version since they passed
    become ``stale``; returns how many. ``provided``: versions a checkout provides instead
    of the installed ones (its own code runs)."""
    from .sandbox.probe import installed_versions

    passed = [s for s in _snippets_with(library, source_id, ["passed"]) if s.validation.packages]
    now = installed_versions({d for s in passed for d in s.validation.packages}, interpreter)
    if now and provided:
        now.update(provided)
    if not now:
        return 0
    changed: list[tuple[Snippet, str]] = []
    for s in passed:
        moves = [f"{d} {old} -> {now.get(d) or 'not installed'}"
                 for d, old in sorted(s.validation.packages.items())
                 if d in now and now[d] != old]
        if moves:
            changed.append((s, "environment changed: " + ", ".join(moves)))
    if not changed:
        return 0
    with library.transaction():
        for s, reason in changed:
            v = Validation(**{**asdict(s.validation), "status": "stale", "reason": reason})
            library.set_validation(s.id, v, revision=s.revision)
    return len(changed)


def mark_retry(library: Library, source_id: str, interpreter: str | None = None) -> int:
    """Skipped snippets that needed a package which is installed now become ``stale``
    (and so are validated again); returns how many."""
    from .imports import distributions_for
    from .sandbox.probe import installed_versions

    waiting: list[tuple[Snippet, str]] = []
    for s in _snippets_with(library, source_id, ["skipped"]):
        reason = s.validation.reason or ""
        if reason.startswith("needs package "):
            waiting.append((s, reason.removeprefix("needs package ").strip()))
    if not waiting:
        return 0
    names = {name: [name, *distributions_for(name)] for _, name in waiting}
    now = installed_versions({d for dists in names.values() for d in dists}, interpreter)
    ready = [(s, name) for s, name in waiting if any(now.get(d) for d in names[name])]
    if not ready:
        return 0
    with library.transaction():
        for s, name in ready:
            v = Validation(**{**asdict(s.validation), "status": "stale",
                              "reason": f"environment changed: {name} is installed now"})
            library.set_validation(s.id, v, revision=s.revision)
    return len(ready)


def waiting_split(library: Library) -> tuple[int, int]:
    """(snippets of installed files or git sources, snippets of upstream layers) waiting for
    validation: what the daemon validates first, and what it holds back until then."""
    waiting = library.waiting_by_layer()
    upstream = sum(n for layer, n in waiting.items() if layer in UPSTREAM_LAYERS)
    return sum(waiting.values()) - upstream, upstream


def _waiting(library: Library, src: RegisteredSource, rep: SourceReport, upstream_layers: bool = True
             ) -> list[Snippet]:
    """The source's snippets to validate this pass, most wanted first (what is left is counted
    pending in ``rep``)."""
    todo = _snippets_with(library, src.id, ["pending", "stale"])
    if not upstream_layers:  # this pass validates what the installed files (or a git source) hold
        rep.pending += sum(1 for s in todo if s.source.layer in UPSTREAM_LAYERS)
        todo = [s for s in todo if s.source.layer not in UPSTREAM_LAYERS]
    todo.sort(key=_wanted)
    limit = src.settings.validate_per_pass
    if isinstance(limit, int) and 0 < limit < len(todo):
        # Big sources (a default library's scipy) are validated over several passes, most wanted
        # first; each pass that leaves some waiting allows the next PASS_GROWTH times as many, so
        # a big source takes a few passes (each paying a warm-up and a look upstream), not dozens.
        rep.pending += len(todo) - limit
        todo = todo[:limit]
        _grow_per_pass(library, src.id, limit * PASS_GROWTH)
    return todo


def _python_path(plan: Plan | None, s: Snippet) -> list[str]:
    """What a snippet runs with on its path: its example folder (data beside a script) first."""
    path = list(plan.python_path) if plan else []
    folder = plan.data_folder(s) if plan else None
    if folder:
        path.insert(0, folder)
    return path


def _finish(plan: Plan | None, s: Snippet, v: Validation) -> None:
    if plan and plan.provides:
        record_versions_that_ran(v, s, plan)


def _count(rep: SourceReport, v: Validation) -> None:
    if v.status in ("passed", "failed", "timeout", "skipped"):
        setattr(rep, v.status, getattr(rep, v.status) + 1)
    else:
        rep.pending += 1


def _validate(library: Library, jobs: list[_Job], publish: _Publisher, workers: int, settings: Any) -> None:
    """Validate the jobs' waiting snippets with ``workers`` warm interpreters (each a full sandbox):
    one batch per source, each most wanted first, in the jobs' order (``sandbox.validate_batches``),
    every source's ``FIRST_LOOK`` most wanted before the others, so a new library's first searches
    find validated code of every package early; each result is stored as it comes. When the
    sandbox itself breaks, what is left stays pending."""
    from . import sandbox

    jobs = [job for job in jobs if job.todo]
    if not jobs:
        return
    left = {(i, s.id) for i, job in enumerate(jobs) for s in job.todo}
    done = [0] * len(jobs)
    for job in jobs:
        publish(job.src.id, "validate", 0, len(job.todo))
    batches = [[sandbox.Task(s.code, tuple(_python_path(job.plan, s)), dict(s.requirements), (i, s))
                for s in job.todo] for i, job in enumerate(jobs)]
    try:
        for task, v in sandbox.validate_batches(batches, settings=settings, workers=workers,
                                                    first=FIRST_LOOK):
            i, s = task.key
            job = jobs[i]
            _finish(job.plan, s, v)
            library.set_validation(s.id, v, revision=s.revision)
            left.discard((i, s.id))
            _count(job.rep, v)
            done[i] += 1
            publish(job.src.id, "validate", done[i], len(job.todo), s.source.path)
    except Exception as exc:  # the sandbox itself broke
        for i, job in enumerate(jobs):
            lost = sum(1 for j, _ in left if j == i)
            if lost:
                job.rep.problems.append(f"{job.src.id}: could not validate {lost} snippets: "
                                        f"{type(exc).__name__}: {exc}"[:300])
                job.rep.pending += lost


def _grow_per_pass(library: Library, source_id: str, limit: int) -> None:
    try:
        current = library.source(source_id)
    except LibraryError:
        return
    if current.state != "removed" and (current.settings.validate_per_pass or 0) > 0:
        current.settings.validate_per_pass = max(current.settings.validate_per_pass, limit)
        library.save_source(current)


def _wanted(s: Snippet) -> tuple:
    """Order of validation: what the installed files hold before an upstream layer's extras,
    then examples of a package's prominent public objects, short ones first."""
    api = getattr(s, "api", "") or ""
    public = bool(api) and not any(part.startswith("_") for part in api.split("."))
    return (s.source.layer in UPSTREAM_LAYERS, 0 if public else 1, api.count(".") if public else 99,
            len(s.code), s.id)


def _validate_on(executor: Any, library: Library, job: _Job, publish: _Publisher, settings: Any) -> None:
    """Validate through ``executor.validate_many`` (a cluster), storing each result as it arrives."""
    src, rep, plan = job.src, job.rep, job.plan
    if not job.todo:
        return
    jobs = [(s, _python_path(plan, s)) for s in job.todo]
    checkout = (plan.root, plan.commit) if plan is not None and plan.commit else None
    publish(src.id, "validate", 0, len(jobs), executor.describe())
    results = executor.validate_many(jobs, settings=settings, checkout=checkout)
    for done, (s, outcome) in enumerate(results, 1):
        if isinstance(outcome, Exception):  # lost with its workers too often: left pending
            first = (str(outcome).strip().splitlines() or [""])[0]
            rep.problems.append(_printable(f"{src.id}: {s.source.path}: could not validate {s.id}: "
                                           f"{type(outcome).__name__}: {first[:200]}"))
            rep.pending += 1
        else:
            _finish(plan, s, outcome)
            library.set_validation(s.id, outcome, revision=s.revision)
            _count(rep, outcome)
        publish(src.id, "validate", done, len(jobs), f"{s.source.path} [{executor.describe()}]")


def record_versions_that_ran(v: Validation, s: Snippet, plan: Plan) -> None:
    """Name, in ``v``, the version of the source's own package that ran for a snippet importing
    it: the checkout's when the checkout ran, else the installed one (also when it is reached
    through a folder on the path, which the sandbox takes for a checkout and names no version of)."""
    wanted = {m.split(".")[0] for m in s.imports}
    for dist, version in plan.provides.items():
        modules = plan.dist_modules | {re.sub(r"[-.]+", "_", dist).lower()}
        if wanted & modules or dist in s.requirements:
            v.packages[dist] = version


# ---------------------------------------------------------------- the refresh


class SourceLock:
    """An exclusive, non-blocking lock on one source, so two refreshes never share a checkout."""

    def __init__(self, library: Library, source_id: str) -> None:
        self.path = sources.sources_dir(library) / f".{source_id}.lock"
        self.fh: Any = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; trust the caller
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            self.fh = None
            return False
        return True

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if not isinstance(exc, (SourceError, LibraryError)):
        message = f"{type(exc).__name__}: {message}"
    return message


@dataclass
class _Job:
    """One source in a refresh: its report, lock and run record, and what it is to validate."""

    src: RegisteredSource
    rep: SourceReport
    lock: SourceLock
    run_id: int
    started: float
    plan: Plan | None = None
    todo: list[Snippet] = field(default_factory=list)
    outcome: str | None = "interrupted"


def refresh_source(library: Library, src: RegisteredSource, *, workers: int | None = None,
                   validate: bool = True, settings: Any = None, full: bool = False,
                   publish: _Publisher | None = None, executor: Any = None,
                   distil_lock: Any = None, upstream_layers: bool = True) -> SourceReport:
    """Refresh one registered source (see the module docstring).

    ``executor`` (a ``cluster.ClusterExecutor``) validates on a Dask cluster
    instead of the local pool; ``distil_lock`` (held while fetching,
    extracting and storing) lets sources refreshed in parallel threads
    extract one at a time. ``upstream_layers=False`` leaves the snippets read
    from a package's upstream layer (sdist, repository) pending this time.

    Never raises for the source's own failures: they end up in the report's
    ``error`` and on the source (state ``error``). KeyboardInterrupt (also
    raised by a progress callback to stop) goes through after the run is
    recorded as interrupted.
    """
    return _refresh_sources(library, [src], workers=workers, validate=validate, settings=settings,
                            full=full, publish=publish, executor=executor, distil_lock=distil_lock,
                            upstream_layers=upstream_layers)[0]


def _refresh_sources(library: Library, chosen: list[RegisteredSource], *, workers: int | None,
                     validate: bool, settings: Any, full: bool, publish: _Publisher | None,
                     executor: Any, distil_lock: Any, upstream_layers: bool) -> list[SourceReport]:
    """Refresh ``chosen`` as ``refresh_source`` does one: each fetched, extracted and stored in
    turn, then, locally, all their waiting snippets validated on one set of ``workers`` servers
    (one batch per source, in order: a source's last slow snippet holds up one core while the
    others start on the next source), each source's run recorded when the validation ends."""
    publish = publish or _Publisher(library, None)
    reports, jobs = [], []
    try:
        for src in chosen:
            rep = SourceReport(source_id=src.id, kind=src.kind)
            reports.append(rep)
            lock = SourceLock(library, src.id)
            if not lock.acquire():
                rep.problems.append(f"{src.id}: skipped: another refresh is working on it")
                continue
            started = time.monotonic()
            try:
                run_id = library.start_run(src.id)
            except BaseException:
                lock.release()
                raise
            job = _Job(src, rep, lock, run_id, started)
            jobs.append(job)
            try:
                with distil_lock or contextlib.nullcontext():
                    job.plan = _distil(library, src, rep, publish, full)
                if job.plan is None:
                    job.outcome = rep.error
                    continue
                interpreter = getattr(settings, "interpreter", None)
                rep.stale = (mark_stale(library, src.id, interpreter, job.plan.provides)
                             + mark_retry(library, src.id, interpreter))
                from .cluster import retry_mismatched

                rep.stale += retry_mismatched(library, src.id)
                if not validate:
                    rep.pending = rep.added + rep.updated + rep.stale
                    job.outcome = rep.error
                    continue
                job.todo = _waiting(library, src, rep, upstream_layers)
                if executor is not None:  # a Dask cluster runs the sandbox; this process writes
                    _validate_on(executor, library, job, publish, settings)
                    job.outcome = rep.error
            except Exception as exc:  # the validation machinery broke; what was stored stays stored
                rep.error = job.outcome = f"validation failed: {_one_line(exc)}"
                job.todo = []
        if validate and executor is None:  # the distilled sources not concluded above
            ready = [job for job in jobs if job.plan is not None and job.outcome == "interrupted"]
            try:
                _validate(library, ready, publish, workers or os.cpu_count() or 1, settings)
                for job in ready:
                    job.outcome = job.rep.error
            except Exception as exc:
                for job in ready:
                    job.rep.error = job.outcome = f"validation failed: {_one_line(exc)}"
    finally:
        for job in jobs:
            try:
                library.finish_run(job.run_id, job.rep.counts(), job.outcome)
            finally:
                job.lock.release()
                job.rep.seconds = time.monotonic() - job.started
    return reports


def _distil(library: Library, src: RegisteredSource, rep: SourceReport, publish: _Publisher,
            full: bool) -> Plan | None:
    """Fetch, extract and store one source; None (and the error recorded) when it failed."""
    try:
        publish(src.id, "fetch", 0, 1)
        extractor = _extractor_version()
        full = full or (extractor is not None and src.settings.extractor != extractor)
        if src.kind == "package":
            plan = _plan_package(library, src, full)
        else:
            plan = _plan_git(library, src, full)
        rep.full, rep.pin = plan.full, plan.commit or plan.version
        publish(src.id, "fetch", 1, 1, (rep.pin or "")[:12])
        stored = library.digests_for_source(src.id)
        snippets, broken = _extract(src, plan, rep, publish, stored)
        publish(src.id, "store", 0, 1, f"{len(snippets)} snippets")
        _store(library, src, plan, snippets, broken, stored, rep, extractor)
        publish(src.id, "store", 1, 1, f"{len(snippets)} snippets")
    except Exception as exc:
        rep.error = _one_line(exc)
        _record_error(library, src.id, rep.error)
        return None
    if src.kind == "package" and plan.full:
        from . import upstream

        upstream.retire_versions(library.path.parent, src.id,
                                 plan.version if plan.upstream is not None else None)
    if plan.commit and plan.commit != src.last_commit:
        try:  # keep the distilled commit reachable, so the next diff can start from it
            sources.run_git(["update-ref", "refs/codedistiller/distilled", plan.commit],
                            cwd=plan.root)
        except SourceError:
            pass
    return plan


def _embed(library: Library, report: RefreshReport) -> None:
    """Embed new and changed snippets when an embeddings model is configured; a failing
    endpoint is one problem line (search stays lexical for what has no vector)."""
    from ..embeddings import EmbeddingError, embedder_for

    embedder = embedder_for(library.path.parent)
    if embedder is None or not report.sources:
        return
    try:
        library.embed_missing(embedder)
    except EmbeddingError as exc:
        report.sources[-1].problems.append(f"search embeddings not updated: {exc}")


def _overlapped(library: Library, chosen: list[RegisteredSource], executor: Any, publish: _Publisher,
                **options: Any) -> list[SourceReport]:
    """Refresh ``chosen`` with a cluster, a few sources at once, so the cluster validates some
    while the next one is extracted: fetch, extract and store stay one source at a time
    (CPython 3.11's ``ast`` is not thread-safe), validations run side by side."""
    from concurrent.futures import ThreadPoolExecutor

    distil_lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=SOURCES_IN_FLIGHT, thread_name_prefix="codedistiller-source") as pool:
        futures = [pool.submit(refresh_source, library, src, publish=publish, executor=executor,
                               distil_lock=distil_lock, **options) for src in chosen]
        try:
            return [f.result() for f in futures]
        except BaseException:  # KeyboardInterrupt from a progress callback: start no other source
            for f in futures:
                f.cancel()
            raise


def refresh(
    library: Library,
    source_ids: Iterable[str] | None = None,
    *,
    workers: int | None = None,
    validate: bool = True,
    settings: Any = None,
    progress: Progress | None = None,
    full: bool = False,
    cluster: str | None = None,
    upstream_layers: bool = True,
) -> RefreshReport:
    """Refresh the given sources (default: every registered one) and return what happened.

    Unknown source ids raise NotFound before anything is done. ``settings``
    is a ``sandbox.SandboxSettings`` (interpreter, timeout, ...); ``workers``
    bounds parallel validations (default: the number of cores); ``full``
    extracts every file again instead of only the changed ones. ``cluster``
    (a Dask scheduler address) validates on its workers instead; an
    unreachable scheduler raises ``cluster.ClusterError`` before anything is done.
    ``upstream_layers=False`` validates only what the installed files of package
    sources (and git sources) hold: the daemon's first passes over a new library.
    """
    from .imports import forget_environment

    started = time.monotonic()
    if source_ids:
        chosen = [library.source(i) for i in dict.fromkeys(source_ids)]
        removed = [s.id for s in chosen if s.state == "removed"]
        if removed:
            raise LibraryError(f"source {removed[0]!r} was removed; add it again to refresh it")
    else:
        chosen = library.sources()
    chosen.sort(key=lambda s: s.settings.order)  # a default library: quickest first
    forget_environment()
    executor = None
    if cluster and cluster != "local" and validate:
        from .cluster import ClusterExecutor

        executor = ClusterExecutor(cluster)
    publish = _Publisher(library, progress)
    report = RefreshReport()
    try:
        if executor is not None and len(chosen) > 1:
            report.sources += _overlapped(library, chosen, executor, publish, workers=workers,
                                          validate=validate, settings=settings, full=full,
                                          upstream_layers=upstream_layers)
        else:
            report.sources += _refresh_sources(library, chosen, workers=workers, validate=validate,
                                               settings=settings, full=full, publish=publish,
                                               executor=executor, distil_lock=None,
                                               upstream_layers=upstream_layers)
    finally:
        if executor is not None:
            executor.close()
    if any(s.counts().get(k) for s in report.sources for k in ("added", "updated", "retired")):
        library.learn_vocabulary()
    _embed(library, report)
    report.seconds = time.monotonic() - started
    totals = report.totals()
    try:
        library.prune_figures()  # figures of revisions a new run replaced
    except (LibraryError, OSError):
        pass
    library.set_progress(PROGRESS_KEY, ProgressEntry(
        step="idle", done=len(chosen), total=len(chosen), detail=report.summary(), pid=os.getpid(),
        finished=utcnow(), counts={k: totals[k] for k in ("added", "updated", "retired", "passed", "failed")}))
    if progress is not None:
        try:
            progress("done", len(chosen), len(chosen), report.summary())
        except Exception:
            pass
    return report

