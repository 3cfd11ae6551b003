"""The store: one SQLite file (WAL) holding snippets, flags, reviews, sources and runs.

Several processes share it (kernels read and flag, the server reads and
serves, the distiller writes): every write is one short ``BEGIN IMMEDIATE``
transaction and every connection waits on a busy database instead of failing.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .figures import MAX_FIGURE_BYTES, BadPNG, FigureStore, check_png, held, hold, is_digest
from .home import library_path
from .model import (
    FLAG_KINDS,
    LLM_ORIGINS,
    ORIGIN_KINDS,
    REVIEW_STATUSES,
    VALIDATION_STATUSES,
    Flag,
    ProgressEntry,
    RecordError,
    RegisteredSource,
    Review,
    ReviewEvent,
    Snippet,
    Validation,
    utcnow,
)
from .people import acting_person
from .schema import rule
from .textindex import (
    STOPWORDS,
    SearchPlan,
    Unit,
    american,
    api_names,
    identifiers,
    query_terms,
    query_words,
    quoted,
    split_words,
)
from .titles import headline
from .vocabulary import phrase_key

SCHEMA_LATEST = 6
# Bump when what ``index_text`` makes of a snippet changes: a library indexed by an older version
# is indexed again when opened (one transaction), so old and new text never mix in one index.
INDEX_VERSION = "3"
BUSY_TIMEOUT_MS = 30_000
# The columns of the full-text index and their BM25 weights: what the code does (its title, the
# API it documents, the APIs it calls) outweighs words that merely occur near it.
FTS_COLUMNS = ("title", "api", "summary", "context", "calls", "tags", "packages", "identifiers")
FTS_WEIGHTS = (10.0, 8.0, 4.0, 1.5, 3.0, 5.0, 3.0, 1.0)
INDEX_ROW = f"INSERT INTO snippets_fts(rowid, {', '.join(FTS_COLUMNS)}) VALUES (?{', ?' * len(FTS_COLUMNS)})"
CANDIDATES = 200
# The first results are ranked alike for every page size; further ones are ranked among
# themselves in rounds of DEEPER, 2 x DEEPER, ... and come after them, so pages never overlap.
# The first round holds the panel's page of 20 and the one more that says a next page exists.
FIRST_RANKED = 21
DEEPER = 50
RANKINGS_KEPT = 32
SCAN_CAP = 1000
SEMANTIC_WEIGHT = 1.0  # with embeddings configured: score x (1 + this x cosine(query, snippet))
PARTIAL_QUERIES = 12  # at most this many word combinations are asked for partial matches
COVERAGE_POWER = 1.0  # a partial match's score x (share of the question's words it holds) ** this
RELAXED = 10  # partial matches (at least) that are weighed against the full matches
RELAX_BELOW = 1  # ... when fewer than this many times the results asked for hold every word
# Where a query word occurs says how much a snippet is about it: column groups and their weights.
FIELD_GROUPS = ((("title", "api"), 10.0), (("calls", "tags", "packages", "summary"), 4.0),
                (("identifiers", "context"), 1.5))
DF_CAP = 5000
MORPHOLOGY = True
ROOT_FROM = 7  # a word this long also matches other words of its root (its stem less a letter)
FULL_FIRST = True
ACRONYM_WORDS = 6  # the most words an acronym of the library's stands for in a query
WEIGHTED_COVERAGE = False
BM25_SHARE = 2.0  # how much text relevance (BM25, which favours short texts) adds to what a snippet is about
RELATED_CREDIT = 0.6  # a word accounted for only by a related word counts this much
CLOSEST = 5  # results shown as "closest" when nothing matches every word
# What an unpaired surrogate (invalid UTF-8 on a command line, "\ud800" in JSON) becomes.
NOT_TEXT = "the text given holds characters that are not valid Unicode (unpaired surrogates)"


class LibraryError(Exception):
    """A request the library cannot carry out; the message is one line for a person."""


class NotFound(LibraryError):
    """No snippet or source with that id."""


@dataclass
class SearchResult:
    """One ranked hit: the snippet, its 1-based rank, its combined score (higher is better)
    and the query words it does not account for (empty for a full match)."""

    snippet: Snippet
    rank: int
    score: float
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = self.snippet.to_dict()
        data["rank"] = self.rank
        data["score"] = round(self.score, 6)
        data["missing"] = list(self.missing)
        data["headline"] = headline(self.snippet).to_dict()
        return data


@dataclass
class LibraryStatus:
    """``Library.status()``: size, counts by state, sources, what long jobs published."""

    path: str
    schema_version: int
    snippets: int = field(metadata=rule(minimum=0))
    retired: int = field(metadata=rule(minimum=0))
    validation: dict[str, int]
    review: dict[str, int]
    origin: dict[str, int]
    flagged: int = field(metadata=rule(minimum=0))
    sources: list[RegisteredSource]
    progress: dict[str, ProgressEntry] = field(metadata=rule(
        description="What long jobs (the distiller, the daemon) last published, by key."))
    size_bytes: int = field(metadata=rule(minimum=0))
    isolation: dict[str, int] = field(metadata=rule(
        description="How validated snippets were contained: isolation level -> count."))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [s.to_dict() for s in self.sources]  # declared settings only
        return data


class SearchResults(list):
    """A search's results, best first, and ``notice``: one line saying that nothing matched
    every word (the results are then the closest ones), or None."""

    def __init__(self, results: Iterable[SearchResult] = (), notice: str | None = None) -> None:
        super().__init__(results)
        self.notice = notice


def _distinct(rows: list[tuple]) -> list[tuple]:
    """Rows (id, data, score, code_sha256, ...) with the same code kept once, the first."""
    seen: set[str] = set()
    return [r for r in rows if not (r[3] in seen or seen.add(r[3]))]


def trust_factor(validation: str, review: str, origin: str, open_flags: int) -> float:
    """How much trust multiplies text relevance: validated and reviewed up, doubt down."""
    factor = 1.0
    factor *= {"passed": 1.5, "pending": 1.0, "skipped": 0.9, "stale": 0.8}.get(validation, 0.6)
    factor *= {"approved": 1.3, "rejected": 0.2}.get(review, 1.0)
    if origin in LLM_ORIGINS and review == "unreviewed":
        factor *= 0.8
    if open_flags:
        factor *= 0.3
    return factor


# ---------------------------------------------------------------- schema

_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sources(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, url TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE snippets(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    code_sha256 TEXT NOT NULL,
    source_id TEXT,
    package TEXT,
    origin_kind TEXT NOT NULL,
    validation_status TEXT NOT NULL,
    license TEXT,
    lifecycle TEXT NOT NULL,
    updated TEXT,
    data TEXT NOT NULL);
CREATE INDEX snippets_source ON snippets(source_id);
CREATE TABLE flags(
    id INTEGER PRIMARY KEY,
    snippet_id TEXT NOT NULL,
    revision INTEGER,
    kind TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    resolved_by TEXT, resolved_at TEXT, resolution TEXT);
CREATE INDEX flags_snippet ON flags(snippet_id);
CREATE TABLE reviews(
    id INTEGER PRIMARY KEY,
    snippet_id TEXT NOT NULL, revision INTEGER NOT NULL,
    status TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '');
CREATE INDEX reviews_snippet ON reviews(snippet_id);
CREATE VIRTUAL TABLE snippets_fts USING fts5(
    title, summary, tags, packages, identifiers,
    tokenize = 'porter unicode61 remove_diacritics 2');
"""

_V2 = """
ALTER TABLE snippets ADD COLUMN review_status TEXT NOT NULL DEFAULT 'unreviewed';
ALTER TABLE snippets ADD COLUMN open_flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snippets ADD COLUMN trust REAL NOT NULL DEFAULT 1.0;
CREATE TABLE runs(
    id INTEGER PRIMARY KEY, source_id TEXT, started TEXT NOT NULL, finished TEXT,
    counts TEXT NOT NULL DEFAULT '{}', error TEXT);
CREATE TABLE progress(key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX snippets_trust ON snippets(trust DESC, updated DESC);
"""


def _backfill_v2(conn: sqlite3.Connection) -> None:
    """Fill the ranking columns that version 2 added from the flags and reviews already kept."""
    rows = conn.execute("SELECT id, revision, origin_kind, validation_status FROM snippets")
    for sid, revision, origin, validation in rows.fetchall():
        _refresh_trust(conn, sid, revision, origin, validation)


_V3 = """
CREATE INDEX snippets_state ON snippets(lifecycle, validation_status);
"""

_V4 = f"""
DROP TABLE snippets_fts;
CREATE VIRTUAL TABLE snippets_fts USING fts5(
    {", ".join(FTS_COLUMNS)},
    tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE snippets_terms USING fts5vocab(snippets_fts, row);
CREATE TABLE vocabulary(
    term TEXT NOT NULL, related TEXT NOT NULL, weight REAL NOT NULL,
    PRIMARY KEY(term, related)) WITHOUT ROWID;
"""


def _backfill_v4(conn: sqlite3.Connection) -> None:
    """Index every stored snippet again with the version 4 columns."""
    for rowid, data in conn.execute("SELECT rowid, data FROM snippets").fetchall():
        _index_row(conn, rowid, Snippet.from_dict(json.loads(data)))


_V5 = """
CREATE TABLE embeddings(
    snippet_rowid INTEGER PRIMARY KEY, model TEXT NOT NULL, code_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL);
"""

# fts5vocab over the index, never read: search asks FTS5 itself how often a word occurs.
_V6 = """
DROP TABLE IF EXISTS snippets_terms;
"""

MIGRATIONS: dict[int, tuple[str, Any]] = {
    1: (_V1, None), 2: (_V2, _backfill_v2), 3: (_V3, None), 4: (_V4, _backfill_v4), 5: (_V5, None),
    6: (_V6, None),
}


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_LATEST) -> int:
    """Bring the schema forward to ``target``, one transaction per step; returns the new version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_LATEST:
        raise LibraryError(
            f"library schema version {version} is newer than this program understands "
            f"({SCHEMA_LATEST}); upgrade jupyter-codedistiller"
        )
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= target:
                conn.execute("COMMIT")
                break
            step = version + 1
            script, backfill = MIGRATIONS[step]
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if backfill:
                backfill(conn)
            conn.execute(f"PRAGMA user_version = {step}")
            conn.execute("COMMIT")
            version = step
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


def reindex(conn: sqlite3.Connection) -> bool:
    """Index every snippet again when the library was indexed by another ``INDEX_VERSION``
    (or never marked); returns whether it did. One write transaction, checked again inside it."""
    def current() -> bool:
        row = conn.execute("SELECT value FROM meta WHERE key = 'index_version'").fetchone()
        return row is not None and row[0] == INDEX_VERSION

    if current():
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        if current():
            conn.execute("COMMIT")
            return False
        conn.execute("DELETE FROM snippets_fts")
        rows = conn.execute("SELECT rowid, data FROM snippets")
        while batch := rows.fetchmany(1000):
            conn.executemany(INDEX_ROW, [(rowid, *index_text(Snippet.from_dict(json.loads(data))))
                                         for rowid, data in batch])
        conn.execute("INSERT INTO snippets_fts(snippets_fts) VALUES ('optimize')")  # one b-tree, not many segments
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index_version', ?)", (INDEX_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection in autocommit mode, WAL journal and a generous busy timeout."""
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _refresh_trust(
    conn: sqlite3.Connection, sid: str, revision: int, origin: str, validation: str
) -> None:
    review = conn.execute(
        "SELECT status FROM reviews WHERE snippet_id = ? AND revision = ? ORDER BY id DESC LIMIT 1",
        (sid, revision),
    ).fetchone()
    review_status = review[0] if review else "unreviewed"
    open_flags = conn.execute(
        "SELECT count(*) FROM flags WHERE snippet_id = ? AND resolved = 0", (sid,)
    ).fetchone()[0]
    conn.execute(
        "UPDATE snippets SET review_status = ?, open_flags = ?, trust = ? WHERE id = ?",
        (review_status, open_flags, trust_factor(validation, review_status, origin, open_flags), sid),
    )


def index_text(s: Snippet) -> tuple[str, ...]:
    """The text of each ``FTS_COLUMNS`` column for a snippet."""
    # The packages column also holds the words of the file a snippet came from: its module path
    # (pandas/core/groupby/generic.py) says what it is about where the public API name
    # (pandas.NamedAgg) does not.
    place = re.sub(r"\.(py|ipynb|md|rst|txt)$", "", s.source.path or "").replace("/", " ")
    packages = " ".join(
        p for p in (*sorted({s.source.package or "", *s.requirements, *s.imports}), place) if p
    ).replace("_", " ").replace("-", " ")
    columns = (s.title, split_words([s.api]) if s.api else "", s.summary, s.context,
               split_words(api_names(s.code)), " ".join(s.tags), packages, identifiers(s.code))
    return tuple(american("\x1f".join(c.replace("\x1f", " ") for c in columns)).split("\x1f"))


def _index_row(conn: sqlite3.Connection, rowid: int, s: Snippet) -> None:
    conn.execute(INDEX_ROW, (rowid, *index_text(s)))


def _process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (the library is local to it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _refresh_trust_current(conn: sqlite3.Connection, sid: str) -> None:
    """``_refresh_trust`` for the snippet as stored now: a refresh may have moved it to a new
    revision or validation since the caller read it, outside this transaction."""
    row = conn.execute(
        "SELECT revision, origin_kind, validation_status FROM snippets WHERE id = ?", (sid,)
    ).fetchone()
    if row is not None:
        _refresh_trust(conn, sid, *row)


# ---------------------------------------------------------------- the store


class Library:
    """The snippet library in one SQLite file; safe to open from several processes at once."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else library_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path)
            migrate(self._conn)
            reindex(self._conn)
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"cannot open library {self.path}: {exc}") from None
        except OSError as exc:  # e.g. a home that is a file
            raise LibraryError(f"cannot open library {self.path}: {exc.strerror or exc}") from None
        self._lock = threading.RLock()
        self._depth = 0
        self._writes = 0  # own commits: PRAGMA data_version counts only other connections'
        self._probes: dict[tuple[int, str], bool] = {}
        self._version = 0
        self._scratch = False  # temp.candidates exists on this connection
        self._stemmer = False  # temp.stems exists on this connection
        self._stems: dict[str, str] = {}
        self._query_vectors: dict[tuple[str, str], list[float]] = {}
        self._rankings: dict[tuple, tuple[list, set, int]] = {}  # see _ranking
        self._embed_quiet_until = 0.0
        self.figures = FigureStore(self.path.parent)

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Library:
        """The library in ``home`` (see ``home.library_home``)."""
        return cls(library_path(home))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                if isinstance(exc, UnicodeEncodeError):
                    raise LibraryError(NOT_TEXT) from None
                raise
            self._depth = 0
            self._conn.execute("COMMIT")
            self._writes += 1

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except UnicodeEncodeError:
                raise LibraryError(NOT_TEXT) from None

    # ------------------------------------------------------------ snippets

    @staticmethod
    def _record(s: Snippet) -> dict[str, Any]:
        """The record as the ``data`` column keeps it: flags and reviews live in their own tables."""
        data = s.to_dict()
        data.pop("flags")
        data.pop("review")
        return data

    def _row_values(self, s: Snippet) -> dict[str, Any]:
        data = self._record(s)
        return {
            "id": s.id,
            "revision": s.revision,
            "code_sha256": s.code_sha256,
            "source_id": s.source.source_id,
            "package": s.source.package,
            "origin_kind": s.origin.kind,
            "validation_status": s.validation.status,
            "license": s.source.license,
            "lifecycle": s.lifecycle,
            "updated": s.updated,
            "data": json.dumps(data, sort_keys=True, ensure_ascii=False),
        }

    def _store_figures(self, validation: Validation) -> None:
        """Write the figures a fresh validation holds (before its record refers to them), each
        checked again as a PNG named by its digest; a figure output with no such PNG held or
        stored is dropped, so a record never names a figure the library lacks."""
        data = held(validation)
        kept = []
        for o in validation.outputs:
            if o.kind == "figure":
                png = data.get(o.sha256 or "")
                try:
                    ok = png is not None and hashlib.sha256(check_png(png)[0]).hexdigest() == o.sha256
                except BadPNG:
                    ok = False
                if ok:
                    self.figures.put(check_png(png)[0])
                elif not self.figures.has(o.sha256 or ""):
                    continue
            kept.append(o)
        validation.outputs = kept

    def _write_row(self, conn: sqlite3.Connection, s: Snippet) -> None:
        self._store_figures(s.validation)
        values = self._row_values(s)
        row = conn.execute("SELECT rowid FROM snippets WHERE id = ?", (s.id,)).fetchone()
        cols = list(values)
        if row:
            sets = ", ".join(f"{c} = :{c}" for c in cols)
            conn.execute(f"UPDATE snippets SET {sets} WHERE id = :id", values)
            rowid = row[0]
            conn.execute("DELETE FROM snippets_fts WHERE rowid = ?", (rowid,))
        else:
            names = ", ".join(cols)
            marks = ", ".join(f":{c}" for c in cols)
            rowid = conn.execute(f"INSERT INTO snippets({names}) VALUES ({marks})", values).lastrowid
        _index_row(conn, rowid, s)
        _refresh_trust(conn, s.id, s.revision, s.origin.kind, s.validation.status)

    def _add_history(self, conn: sqlite3.Connection, s: Snippet) -> None:
        """Add the snippet's flags and review events that the store does not hold yet."""
        for f in s.flags:
            same = conn.execute(
                "SELECT id, resolved FROM flags WHERE snippet_id = ? AND kind = ? AND reason = ? "
                "AND by = ? AND at = ?",
                (s.id, f.kind, f.reason, f.by, f.when),
            ).fetchone()
            if same is None:
                conn.execute(
                    "INSERT INTO flags(snippet_id, revision, kind, reason, by, at, resolved, "
                    "resolved_by, resolved_at, resolution) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (s.id, f.revision, f.kind, f.reason, f.by, f.when, int(f.resolved),
                     f.resolved_by, f.resolved_when, f.resolution),
                )
            elif f.resolved and not same[1]:
                conn.execute(
                    "UPDATE flags SET resolved = 1, resolved_by = ?, resolved_at = ?, "
                    "resolution = ? WHERE id = ?",
                    (f.resolved_by, f.resolved_when, f.resolution, same[0]),
                )
        for e in s.review.history:
            same = conn.execute(
                "SELECT 1 FROM reviews WHERE snippet_id = ? AND revision = ? AND status = ? "
                "AND by = ? AND at = ?",
                (s.id, e.revision, e.status, e.by, e.when),
            ).fetchone()
            if same is None:
                conn.execute(
                    "INSERT INTO reviews(snippet_id, revision, status, by, at, note) "
                    "VALUES (?,?,?,?,?,?)",
                    (s.id, e.revision, e.status, e.by, e.when, e.note),
                )
        _refresh_trust_current(conn, s.id)

    def put(self, snippet: Snippet) -> Snippet:
        """Store ``snippet`` exactly as given (plus its flags and reviews); returns it as stored."""
        now = utcnow()
        snippet.created = snippet.created or now
        snippet.updated = snippet.updated or now
        with self.transaction() as conn:
            self._write_row(conn, snippet)
            self._add_history(conn, snippet)
        return self.get(snippet.id)

    def upsert(self, snippets: Iterable[Snippet]) -> dict[str, int]:
        """Store freshly distilled snippets in one transaction, keeping ids stable.

        A snippet whose code changed gets the next revision; one whose code is
        the same keeps its revision (and its validation unless a new one is
        given); a retired snippet found again comes back to life. Flags and
        reviews already kept are never touched. Returns added / updated /
        unchanged counts.
        """
        counts = {"added": 0, "updated": 0, "revived": 0, "unchanged": 0}
        now = utcnow()
        with self.transaction() as conn:
            for s in snippets:
                row = conn.execute(
                    "SELECT revision, code_sha256, lifecycle, data FROM snippets WHERE id = ?",
                    (s.id,),
                ).fetchone()
                s.updated = now
                if row is None:
                    s.created = s.created or now
                    s.revision = max(1, s.revision)
                    counts["added"] += 1
                else:
                    old = json.loads(row[3])
                    s.created = old.get("created") or now
                    if row[1] != s.code_sha256:
                        s.revision = row[0] + 1
                        counts["updated"] += 1
                    else:
                        s.revision = row[0]
                        if s.validation.status == "pending":
                            s.validation = Validation(**old["validation"])
                        if row[2] == "retired":
                            counts["revived"] += 1
                        else:
                            counts["unchanged"] += 1
                            s.lifecycle = "active"
                            if old == json.loads(json.dumps({**self._record(s), "updated": old.get("updated")})):
                                continue
                s.lifecycle = "active"
                self._write_row(conn, s)
        return counts

    def load(self, snippets: Iterable[Snippet], batch: int = 5000) -> int:
        """Add many new snippets fast (a benchmark's library, a first import): ``batch`` per
        transaction, rows and index written with one ``executemany`` each. A snippet whose id is
        stored already goes through ``upsert``, one that carries flags or reviews is stored as
        ``put`` stores it. Returns how many were added."""
        added = 0
        chunk: list[Snippet] = []

        def flush() -> None:
            nonlocal added
            now = utcnow()
            with self.transaction() as conn:
                ids = [s.id for s in chunk]
                stored = {r[0] for r in conn.execute(
                    f"SELECT id FROM snippets WHERE id IN ({','.join('?' * len(ids))})", ids)}
                fresh, other = [], []
                for s in dict((s.id, s) for s in chunk).values():
                    (other if s.id in stored or s.flags or s.review.history else fresh).append(s)
                rows = []
                for s in fresh:
                    s.created, s.updated = s.created or now, s.updated or now
                    s.revision = max(1, s.revision)
                    self._store_figures(s.validation)
                    values = self._row_values(s)
                    values["trust"] = trust_factor(s.validation.status, "unreviewed", s.origin.kind, 0)
                    rows.append(values)
                if rows:
                    cols = list(rows[0])
                    conn.executemany(f"INSERT INTO snippets({', '.join(cols)}) VALUES "
                                     f"({', '.join(':' + c for c in cols)})", rows)
                    rowids = dict(conn.execute(
                        f"SELECT id, rowid FROM snippets WHERE id IN ({','.join('?' * len(fresh))})",
                        [s.id for s in fresh]))
                    conn.executemany(INDEX_ROW, [(rowids[s.id], *index_text(s)) for s in fresh])
                added += len(fresh)
                for s in other:
                    if s.id in stored:
                        self.upsert([s])
                    else:
                        s.created, s.updated = s.created or now, s.updated or now
                        self._write_row(conn, s)
                        self._add_history(conn, s)
                        added += 1
            chunk.clear()

        for s in snippets:
            chunk.append(s)
            if len(chunk) >= batch:
                flush()
        if chunk:
            flush()
        return added

    def set_validation(self, snippet_id: str, validation: Validation, revision: int | None = None) -> None:
        """Record a validation outcome; ignored if the snippet moved past ``revision`` meanwhile."""
        self._store_figures(validation)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT revision, data FROM snippets WHERE id = ?", (snippet_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no snippet {snippet_id!r}")
            if revision is not None and row[0] != revision:
                return
            data = json.loads(row[1])
            data["validation"] = asdict(validation)
            conn.execute(
                "UPDATE snippets SET data = ?, validation_status = ? WHERE id = ?",
                (json.dumps(data, sort_keys=True, ensure_ascii=False), validation.status, snippet_id),
            )
            _refresh_trust(conn, snippet_id, row[0], data["origin"]["kind"], validation.status)

    def retire(self, snippet_ids: Iterable[str]) -> int:
        """Mark snippets as gone upstream; they stay stored, with their history. Returns how many."""
        n = 0
        with self.transaction() as conn:
            for sid in snippet_ids:
                row = conn.execute(
                    "SELECT data FROM snippets WHERE id = ? AND lifecycle = 'active'", (sid,)
                ).fetchone()
                if row is None:
                    continue
                data = json.loads(row[0])
                data["lifecycle"] = "retired"
                data["updated"] = utcnow()
                conn.execute(
                    "UPDATE snippets SET lifecycle = 'retired', data = ?, updated = ? WHERE id = ?",
                    (json.dumps(data, sort_keys=True, ensure_ascii=False), data["updated"], sid),
                )
                n += 1
        return n

    def ids_for_source(self, source_id: str) -> dict[str, str]:
        """Ids of a source's active snippets mapped to the path they came from."""
        return {sid: path for sid, (path, _) in self.digests_for_source(source_id).items()}

    def digests_for_source(self, source_id: str) -> dict[str, tuple[str, str]]:
        """A source's active snippets: id -> (path it came from, code_sha256); cheap to ask."""
        rows = self._read(
            "SELECT id, json_extract(data, '$.source.path'), code_sha256 FROM snippets "
            "WHERE source_id = ? AND lifecycle = 'active'",
            (source_id,),
        )
        return {sid: (path, digest) for sid, path, digest in rows}

    def llm_ids_for_source(self, source_id: str) -> set[str]:
        """Ids of a source's active snippets that an LLM adapted or generated."""
        marks = ",".join("?" * len(LLM_ORIGINS))
        rows = self._read(
            f"SELECT id FROM snippets WHERE source_id = ? AND lifecycle = 'active' AND origin_kind IN ({marks})",
            (source_id, *LLM_ORIGINS),
        )
        return {r[0] for r in rows}

    def _compose(self, rows: list[tuple[str, str]]) -> list[Snippet]:
        """Snippets from (id, data) rows, with their flags and review history attached."""
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        flags: dict[str, list[Flag]] = {i: [] for i in ids}
        for r in self._read(
            "SELECT snippet_id, id, revision, kind, reason, by, at, resolved, resolved_by, "
            f"resolved_at, resolution FROM flags WHERE snippet_id IN ({marks}) ORDER BY id",
            ids,
        ):
            flags[r[0]].append(
                Flag(id=r[1], revision=r[2], kind=r[3], reason=r[4], by=r[5], when=r[6],
                     resolved=bool(r[7]), resolved_by=r[8], resolved_when=r[9], resolution=r[10])
            )
        history: dict[str, list[ReviewEvent]] = {i: [] for i in ids}
        for r in self._read(
            "SELECT snippet_id, status, by, at, revision, note FROM reviews "
            f"WHERE snippet_id IN ({marks}) ORDER BY id",
            ids,
        ):
            history[r[0]].append(ReviewEvent(status=r[1], by=r[2], when=r[3], revision=r[4], note=r[5]))
        out = []
        for sid, data in rows:
            s = Snippet.from_dict(json.loads(data))
            s.flags = flags[sid]
            s.review = Review.for_revision(history[sid], s.revision)
            out.append(s)
        return out

    def get(self, snippet_id: str) -> Snippet:
        """The snippet with that id (a unique id prefix of 6+ characters also works)."""
        rows = self._read("SELECT id, data FROM snippets WHERE id = ?", (snippet_id,))
        if not rows and len(snippet_id) >= 6:
            pattern = snippet_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._read(
                "SELECT id, data FROM snippets WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (pattern + "%",)
            )
            if len(rows) > 1:
                raise LibraryError(f"snippet id {snippet_id!r} is ambiguous; give more of it")
        if not rows:
            raise NotFound(f"no snippet {snippet_id!r} in the library")
        return self._compose(rows)[0]

    def count(self, *, include_retired: bool = False) -> int:
        sql = "SELECT count(*) FROM snippets"
        if not include_retired:
            sql += " WHERE lifecycle = 'active'"
        return self._read(sql)[0][0]

    def all(self, *, include_retired: bool = True, source: str | None = None,
            validation: str | None = None) -> Iterator[Snippet]:
        """Every snippet (or a source's, or those with one validation status), ordered by id, in batches."""
        last = ""
        where, params = "", []
        if not include_retired:
            where += " AND lifecycle = 'active'"
        if source is not None:
            where += " AND source_id = ?"
            params.append(source)
        if validation is not None:
            where += " AND validation_status = ?"
            params.append(validation)
        while True:
            rows = self._read(
                f"SELECT id, data FROM snippets WHERE id > ?{where} ORDER BY id LIMIT 500", (last, *params)
            )
            if not rows:
                return
            yield from self._compose(rows)
            last = rows[-1][0]

    # ------------------------------------------------------------ search

    # filter name -> (SQL clause on the snippets row, allowed values or None); the CLI and the API use these names
    FILTERS = {
        "package": ("s.package = ?", None),
        "validation": ("s.validation_status = ?", VALIDATION_STATUSES),
        "review": ("s.review_status = ?", REVIEW_STATUSES),
        "origin": ("s.origin_kind = ?", ORIGIN_KINDS),
        "license": ("s.license = ?", None),
        "source": ("s.source_id = ?", None),
        "tag": ("EXISTS (SELECT 1 FROM json_each(s.data, '$.tags') WHERE value = ?)", None),
    }

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        offset: int = 0,
        include_retired: bool = False,
        include_rejected: bool = False,
        **filters: str | None,
    ) -> SearchResults:
        """Ranked snippets for ``query``: BM25 text relevance weighted by trust.

        Filters: package, validation, review, origin, license, source, tag.
        Retired and rejected snippets are hidden unless asked for. Any string
        is a valid query; one with no searchable word lists the most trusted.
        """
        if not isinstance(limit, int) or limit < 1 or limit > 1000:
            raise LibraryError("limit must be a whole number from 1 to 1000")
        if offset < 0:
            raise LibraryError("offset must not be negative")
        where, params = [], []
        for name, value in filters.items():
            if value is None or value == "":
                continue
            if name not in self.FILTERS:
                raise LibraryError(
                    f"unknown filter {name!r}; use one of {', '.join(sorted(self.FILTERS))}"
                )
            clause, allowed = self.FILTERS[name]
            if not isinstance(value, str):
                raise LibraryError(f"{name} must be text")
            if any("\ud800" <= c <= "\udfff" for c in value):  # checked before any word is looked up
                raise LibraryError(NOT_TEXT)
            if allowed and value not in allowed:
                raise LibraryError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
            where.append(clause)
            params.append(value)
        if not include_retired:
            where.append("s.lifecycle = 'active'")
        if not include_rejected and filters.get("review") != "rejected":
            where.append("s.review_status != 'rejected'")
        extra = "".join(f" AND {w}" for w in where)
        want = offset + limit
        plan = self._plan(query)
        if not plan.units:
            rows = self._read(
                # Walk the trust index in order: no sort of the whole library.
                "SELECT s.id, NULL, s.trust, s.code_sha256, s.rowid FROM snippets s "
                "INDEXED BY snippets_trust WHERE 1" + extra
                + " ORDER BY s.trust DESC, s.updated DESC, s.rowid LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            found = [(r, []) for r in _distinct(rows)]
        else:
            # Ranked alike whatever the page size (CLI 10, panel 20, an agent's 50): a deeper
            # page adds the further matches after the first ones, never between them.
            found = self._ranking(plan, extra, params, want)
            if found:
                found = self._rerank(query, found)
        notice = None
        if plan.units and not any(not missing for _, missing in found):
            found = found[:CLOSEST][offset:want]
            lacking = " ".join(plan.unknown or plan.words)
            whole = plan.unknown or len(plan.words) == 1
            notice = (f"no snippet matches {'' if whole else 'all of '}{lacking!r}"
                      + ("; closest:" if found else ""))
        elif plan.units:
            found = found[offset:want]
        snippets = self._compose(self._data([r[0] for r, _ in found]))
        return SearchResults(
            [SearchResult(snippet=s, rank=offset + i + 1, score=float(r[2]), missing=missing)
             for i, (s, (r, missing)) in enumerate(zip(snippets, found, strict=True))],
            notice=notice,
        )

    def learn_vocabulary(self) -> int:
        """Mine related words from the active snippets (``vocabulary.related``) and keep them
        for query expansion, replacing what was learnt before; returns how many terms have some."""
        from . import vocabulary

        # Snippets of one package with one title (a method documented alike on several classes)
        # are one document, and so are the blocks of one file that document no API (the cells of
        # a notebook or gallery script share its prose): their shared words are one piece of
        # evidence, not several.
        documents: dict[tuple[str, str, str], set[str]] = {}
        prose: list[str] = []
        # The words are those of the snippet's index row (``index_text``, stored when it was
        # written): reading them back spares parsing every snippet's code again.
        for data, *indexed in self._read(
                f"SELECT s.data, {', '.join('f.' + c for c in FTS_COLUMNS)} FROM snippets s "
                "JOIN snippets_fts f ON f.rowid = s.rowid WHERE s.lifecycle = 'active'"):
            s = Snippet.from_dict(json.loads(data))
            owner = s.source.package or s.source.source_id or ""
            key = ((owner, "api", s.title.strip().lower() or s.id) if s.api or not s.source.path
                   else (owner, "file", s.source.path))
            documents.setdefault(key, set()).update(vocabulary.words(" ".join(indexed)))
            prose.append(f"{s.title}\n{s.summary}\n{s.context}")
        learnt = vocabulary.related(documents.values())
        df = Counter(w for d in documents.values() for w in d)
        defined = vocabulary.acronyms(prose, df, len(documents))
        rows = {(t, r): w for t, rel in learnt.items() for r, w in rel}
        for acronym, terms in defined.items():  # both ways: "roc" <-> "receiver operating characteristic"
            rows[(acronym, " ".join(terms))] = rows[(phrase_key(terms), acronym)] = vocabulary.ACRONYM_WEIGHT
        with self.transaction() as conn:
            conn.execute("DELETE FROM vocabulary")
            conn.executemany("INSERT INTO vocabulary(term, related, weight) VALUES (?, ?, ?)",
                             [(t, r, w) for (t, r), w in rows.items()])
        return len(learnt)

    def _acronyms(self) -> dict[str, str]:
        """The acronyms the library defines, both ways: phrase key -> acronym, acronym -> phrase."""
        from .vocabulary import ACRONYM_WEIGHT

        key = (self._version, "acronyms")
        if key not in self._probes:
            self._probes[key] = dict(self._read(
                "SELECT term, related FROM vocabulary WHERE weight = ?", (ACRONYM_WEIGHT,)))
        return self._probes[key]

    def related_terms(self, word: str) -> list[str]:
        """Words the library's own documents relate to ``word``, strongest first."""
        from .vocabulary import normal

        return [r[0] for r in self._read(
            "SELECT related FROM vocabulary WHERE term = ? ORDER BY weight DESC, related", (normal(word),))]

    def embed_missing(self, embedder: Any, *, limit: int | None = None) -> int:
        """Embed the active snippets that have no vector from ``embedder``'s model for their
        current code (``embeddings.Embedder``); returns how many were stored. Raises
        ``embeddings.EmbeddingError`` when the endpoint fails (what was stored stays)."""
        from . import embeddings

        rows = self._read(
            "SELECT s.rowid, s.data, s.code_sha256 FROM snippets s LEFT JOIN embeddings e "
            "ON e.snippet_rowid = s.rowid AND e.model = ? AND e.code_sha256 = s.code_sha256 "
            "WHERE s.lifecycle = 'active' AND e.snippet_rowid IS NULL ORDER BY s.rowid"
            + (f" LIMIT {int(limit)}" if limit else ""), (embedder.model,))
        done = 0
        for start in range(0, len(rows), embeddings.BATCH):
            batch = rows[start:start + embeddings.BATCH]
            texts = [embeddings.snippet_text(Snippet.from_dict(json.loads(r[1]))) for r in batch]
            vectors = embedder.embed([t or " " for t in texts])
            with self.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO embeddings(snippet_rowid, model, code_sha256, vector) "
                    "VALUES (?, ?, ?, ?)",
                    [(r[0], embedder.model, r[2], embeddings.pack(v)) for r, v in zip(batch, vectors, strict=True)])
            done += len(batch)
        return done

    def _rerank(self, query: str, found: list[tuple[tuple, list[str]]]) -> list[tuple[tuple, list[str]]]:
        """``found`` re-ranked by meaning when embeddings are configured and stored; else as is.

        The query is embedded once (remembered); a failing endpoint is left alone for a
        minute, and search stays lexical meanwhile."""
        import time

        from . import embeddings

        key = (self._version, "embedded")
        if key not in self._probes:
            self._probes[key] = bool(self._read("SELECT EXISTS(SELECT 1 FROM embeddings)")[0][0])
        if not self._probes[key] or time.monotonic() < self._embed_quiet_until:
            return found
        embedder = embeddings.embedder_for(self.path.parent)
        if embedder is None:
            return found
        vector = self._query_vectors.get((embedder.model, query))
        if vector is None:
            try:
                vector = embedder.embed([query], timeout=embeddings.QUERY_TIMEOUT)[0]
            except embeddings.EmbeddingError:
                self._embed_quiet_until = time.monotonic() + 60
                return found
            if len(self._query_vectors) > 256:
                self._query_vectors.clear()
            self._query_vectors[(embedder.model, query)] = vector
        rowids = [r[4] for r, _ in found]
        stored = dict(self._read(
            f"SELECT snippet_rowid, vector FROM embeddings WHERE model = ? AND snippet_rowid IN "
            f"({','.join(map(str, rowids))})", (embedder.model,)))
        out = []
        for row, missing in found:
            similarity = embeddings.cosine(vector, embeddings.unpack(stored[row[4]])) if row[4] in stored else 0.0
            score = row[2] * (1 + SEMANTIC_WEIGHT * max(0.0, similarity))
            out.append(((row[0], row[1], score, row[3], row[4]), missing))
        out.sort(key=lambda item: (-item[0][2], item[0][0]))
        return out

    def _data(self, ids: list[str]) -> list[tuple[str, str]]:
        """(id, data) of these snippets, in this order."""
        if not ids:
            return []
        data = dict(self._read(f"SELECT id, data FROM snippets WHERE id IN ({','.join('?' * len(ids))})", ids))
        return [(i, data[i]) for i in ids]

    def _probe(self, expression: str) -> bool:
        """Whether anything in the index matches ``expression`` (answered by the first hit)."""
        key = (self._version, expression)
        if key not in self._probes:
            if len(self._probes) > 4096:
                self._probes.clear()
            self._probes[key] = bool(self._read(
                "SELECT 1 FROM snippets_fts WHERE snippets_fts MATCH ? LIMIT 1", (expression,)))
        return self._probes[key]


    def _plan(self, query: str) -> SearchPlan:
        """The query's units with the spellings and related words this library knows for them.

        Two words written apart meet their joined spelling (``log rank`` / ``log-rank`` and
        ``logrank``) and a joined word meets its parts written apart, whenever the index holds
        that form; related words come from the library's own mined vocabulary.
        """
        terms = query_terms(query)
        written = query_words(query)
        # a word and the short word written after it, which code often joins: "group by" / groupby
        joins = {w: w + n for w, n in itertools.pairwise(written) if n in STOPWORDS and w not in STOPWORDS}
        if terms:  # what the probes learnt holds until someone writes (data_version: others' writes)
            self._version = self._read("PRAGMA data_version")[0][0] + self._writes
        units: list[Unit] = []
        defined = self._acronyms() if terms else {}
        i = 0
        while i < len(terms):
            word = terms[i]
            # words an acronym the library defines stands for: one unit, the acronym a spelling
            group = next((terms[i:i + k] for k in range(ACRONYM_WORDS, 1, -1)
                          if i + k <= len(terms) and phrase_key(terms[i:i + k]) in defined), None)
            if group:
                units.append(Unit(tuple(group), ["(" + " AND ".join(map(quoted, group)) + ")",
                                                 quoted(defined[phrase_key(group)])]))
                i += len(group)
                continue
            if i + 1 < len(terms) and self._probe(quoted(word + terms[i + 1])):
                pair = terms[i + 1]
                units.append(Unit((word, pair), [f'({quoted(word)} AND {quoted(pair)})',
                                                 quoted(word + pair)]))
                i += 2
                continue
            unit = Unit((word,), [quoted(word)])
            if " " in defined.get(word, ""):  # an acronym: also the words it stands for
                unit.spellings.append("(" + " AND ".join(map(quoted, defined[word].split())) + ")")
            root = self._stem([word])[word][:-1]
            if MORPHOLOGY and len(word) >= ROOT_FROM and len(root) >= ROOT_FROM - 1 and root.isalpha():
                # the same root in another form: classifier / classification, normalisation / -ize
                unit.roots.append(quoted(root) + "*")
            if word in joins and self._probe(quoted(joins[word])):
                unit.spellings.append(quoted(joins[word]))
            if len(word) >= 6 and not word.isdigit():
                for k in range(3, len(word) - 1):
                    if len(word) - k < 3 and word[k:] not in STOPWORDS:
                        continue  # "groupby" meets "group by"
                    split = quoted(f"{word[:k]} {word[k:]}")
                    if self._probe(split):
                        unit.spellings.append(split)
            units.append(unit)
            i += 1
        for unit in units:
            unit.related = self.related_terms(" ".join(unit.words))
            unit.known = self._probe(unit.expression(expanded=True))
        return SearchPlan(units)

    def _ranking(self, plan: SearchPlan, extra: str, params: list[Any], want: int
                 ) -> list[tuple[tuple, list[str]]]:
        """At least the first ``want`` of one ranking of ``_matching`` results that does not depend
        on ``want``: the best of a ``FIRST_RANKED`` search, then each deeper round's new ones.
        Rounds already ranked are remembered until the library changes (the panel's next page)."""
        key = (self._version, repr(plan.units), extra, repr(params))
        found, seen, depth = self._rankings.pop(key, ([], set(), 0))
        while depth < want and (not depth or len(found) < want):
            depth = FIRST_RANKED if not depth else max(DEEPER, depth * 2)
            found += [item for item in self._matching(plan, extra, params, depth)
                      if not (item[0][3] in seen or seen.add(item[0][3]))]
        if len(self._rankings) >= RANKINGS_KEPT:
            self._rankings.pop(next(iter(self._rankings)))
        self._rankings[key] = (found, seen, depth)
        return list(found)

    def _matching(self, plan: SearchPlan, extra: str, params: list[Any], want: int
                  ) -> list[tuple[tuple, list[str]]]:
        """((id, data, score, sha, rowid), words it lacks) of the best matches, best first.

        Candidates are the best snippets holding every word (by its spellings, then also by
        related words) and, when those are few, the best holding any word. Each is scored by
        what it is about: per query word, how telling the word is (its inverse document
        frequency) times the weight of the strongest column group it occurs in
        (``FIELD_GROUPS``), plus ``BM25_SHARE`` x BM25, all times trust. A word it lacks adds
        nothing, and is listed; full matches come before partial ones. The same code appears once.
        """
        filtered = bool(params)
        known = [u for u in plan.units if u.known]
        if not known:
            return []
        rows: dict[int, tuple] = {}

        def gather(found: list[tuple]) -> None:
            for r in found:
                if r[4] not in rows or rows[r[4]][2] < r[2]:
                    rows[r[4]] = r

        complete = len(known) == len(plan.units)
        if complete:
            gather(self._ranked(plan.expression(), extra, params, want, filtered))
        prefix = len(rows) < want
        if complete and prefix:
            gather(self._ranked(plan.expression(prefix_last=True), extra, params, want, filtered))
            if len(rows) < want and plan.expandable:
                # Related words find what the question's own words miss; their matches add to
                # the text score, so such a snippet's score is discounted.
                gather([(r[0], r[1], r[2] * RELATED_CREDIT, r[3], r[4], r[5] * RELATED_CREDIT) for r in self._ranked(
                    plan.expression(expanded=True, prefix_last=True), extra, params, want, filtered)])
        weight = self._informativeness(plan)
        if len(known) > 1 and (not complete or len(rows) < want * RELAX_BELOW):
            # Partial matches: the snippets holding most of the question's words, found by asking
            # for each combination of all but one (then two, ...) of them, the most telling first.
            # Each such query is selective, unlike one holding any word, which common words
            # ("time", "array") would fill with snippets that share only those.
            enough = max(want, RELAXED)
            last = plan.units[-1]
            asked = 0
            for size in range(len(known) - (1 if complete else 0), 0, -1):
                combos = sorted(itertools.combinations(known, size),
                                key=lambda c: -sum(weight[plan.units.index(u)] for u in c))
                for combo in combos[:PARTIAL_QUERIES - asked]:
                    expression = " AND ".join(u.expression(prefix=prefix and u is last, roots=True)
                                              for u in combo)
                    gather(self._ranked(expression, extra, params, want, filtered))
                    asked += 1
                if len(rows) >= enough or asked >= PARTIAL_QUERIES:
                    break
            if len(rows) < enough:  # what is left: the snippets holding any of the words
                anything = " OR ".join(u.expression(prefix=prefix and u is last, roots=True) for u in known)
                gather(self._ranked(anything, extra, params, enough, filtered)[:enough])
        elif not complete:
            gather(self._ranked(plan.expression(known, expanded=True), extra, params, want, filtered))
        credit = self._coverage(plan, list(rows), prefix)
        scored = []
        for rowid, r in rows.items():
            found = credit.get(rowid, {})
            # Word by word: how telling the word is, times the strongest place it occurs in
            # (title or API over a passing mention).
            about = sum(weight[i] * c for i, c in found.items())
            missing = [w for i, u in enumerate(plan.units) if i not in found for w in u.words]
            trust = r[2] / r[5] if r[5] else 1.0
            score = trust * (about + BM25_SHARE * r[5])
            if missing:  # a partial match counts by the share of the question it accounts for
                if WEIGHTED_COVERAGE:
                    share = sum(weight[i] for i in found) / (sum(weight) or 1.0)
                else:
                    share = len(found) / len(plan.units)
                score *= share ** COVERAGE_POWER
            scored.append(((r[0], r[1], score, r[3], r[4]), missing))
        # Snippets that account for every word come first: a partial match never hides a full one.
        scored.sort(key=lambda item: (bool(item[1]) if FULL_FIRST else 0, -item[0][2], item[0][0]))
        seen: set[str] = set()
        return [item for item in scored if not (item[0][3] in seen or seen.add(item[0][3]))]

    def _informativeness(self, plan: SearchPlan) -> list[float]:
        """How much each unit of the query says: the inverse document frequency of its rarest
        word (a word in every snippet says little, one in a few says much)."""
        self._stem([w for u in plan.units for w in (*u.words, "".join(u.words))])
        with self._lock:
            conn = self._conn
            key = (self._version, "count")
            if key not in self._probes:
                self._probes[key] = conn.execute("SELECT count(*) FROM snippets").fetchone()[0]
            total = self._probes[key]
        out = []
        for unit in plan.units:
            df = [self._document_frequency(self._stems[w]) for w in (*unit.words, "".join(unit.words))]
            rarest = min((d for d in df if d), default=0)
            out.append(math.log(1 + (total - rarest + 0.5) / (rarest + 0.5)))
        return out

    def _stem(self, words: list[str]) -> dict[str, str]:
        """word -> the term the index's tokenizer (porter) makes of it, remembered."""
        with self._lock:
            conn = self._conn
            if not self._stemmer:
                conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.stems USING fts5(word, "
                             "tokenize = 'porter unicode61 remove_diacritics 2')")
                conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.stems_terms "
                             "USING fts5vocab('temp', 'stems', 'instance')")
                self._stemmer = True
            todo = [w for w in dict.fromkeys(words) if w not in self._stems]
            if todo:
                conn.execute("DELETE FROM temp.stems")
                conn.executemany("INSERT INTO temp.stems(rowid, word) VALUES (?, ?)",
                                 list(enumerate(todo, 1)))
                found = dict(conn.execute("SELECT doc, term FROM temp.stems_terms"))
                for i, w in enumerate(todo, 1):
                    self._stems[w] = found.get(i, w)
        return {w: self._stems[w] for w in words}

    def _document_frequency(self, term: str) -> int:
        """In how many snippets the (stemmed) term occurs, counted up to ``DF_CAP``: past
        that a word is common and its exact count would cost a walk over all of them."""
        key = (self._version, "df:" + term)
        if key not in self._probes:
            self._probes[key] = self._read(
                f"SELECT count(*) FROM (SELECT rowid FROM snippets_fts WHERE snippets_fts MATCH ? "
                f"LIMIT {DF_CAP})", (quoted(term),))[0][0]
        return self._probes[key]

    def _coverage(self, plan: SearchPlan, rowids: list[int], prefix: bool) -> dict[int, dict[int, float]]:
        """rowid -> {unit index: credit} for the units a snippet accounts for: the weight of the
        strongest column group holding one of the unit's spellings (``FIELD_GROUPS``), or
        ``RELATED_CREDIT`` times the weakest when it holds only a related word. FTS5 itself
        decides, on a small in-memory index of just these snippets, so stemming and phrases
        count as in the search."""
        if not rowids:
            return {}
        columns = ", ".join(FTS_COLUMNS)
        out: dict[int, dict[int, float]] = {r: {} for r in rowids}
        with self._lock:
            conn = self._conn
            if not self._scratch:
                # Contentless: only rowids are read back, and emptying it ('delete-all') does not
                # tokenize the rows again as a DELETE from a table holding its text does.
                conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.candidates USING fts5({columns}, "
                             "content = '', tokenize = 'porter unicode61 remove_diacritics 2')")
                self._scratch = True
            conn.execute("INSERT INTO temp.candidates(candidates) VALUES ('delete-all')")
            conn.execute(f"INSERT INTO temp.candidates(rowid, {columns}) SELECT rowid, {columns} "
                         f"FROM main.snippets_fts WHERE rowid IN ({','.join(map(str, rowids))})")
            for i, unit in enumerate(plan.units):
                if not unit.known:
                    continue
                last = prefix and unit is plan.units[-1]
                tries = [(f"{{{' '.join(cols)}}} : ({unit.expression(prefix=last, roots=True)})", value)
                         for cols, value in FIELD_GROUPS]
                if unit.related:
                    tries.append((unit.expression(expanded=True, prefix=last),
                                  RELATED_CREDIT * FIELD_GROUPS[-1][1]))
                for expression, value in tries:
                    for (rowid,) in conn.execute(
                            "SELECT rowid FROM temp.candidates WHERE candidates MATCH ?", (expression,)):
                        out[rowid][i] = max(out[rowid].get(i, 0.0), value)
        return out

    def _ranked(
        self, expression: str, extra: str, params: list[Any], want: int, filtered: bool
    ) -> list[tuple[str, str, float, str, int, float]]:
        """(id, data, score, code_sha256, rowid, bm25) of the best ``want`` matches, best first.

        Text relevance picks the candidates (the best ``CANDIDATES`` by BM25),
        then trust re-ranks them. A query whose words are so common that more
        than ``SCAN_CAP`` snippets match is ranked among the most recent
        ``SCAN_CAP`` matches, which keeps every search within a few milliseconds.
        """
        weights = ", ".join(str(w) for w in FTS_WEIGHTS)
        bm25 = f"bm25(snippets_fts, {weights})"
        if filtered:
            # The best matches often pass the filters: try them first (cheap), and only when
            # too few pass, filter while scanning, so that the cap counts matches that pass.
            found = self._ranked(expression, extra, params, want, False)
            if len(found) >= want:
                return found
            inner = (f"SELECT snippets_fts.rowid AS rowid, {bm25} AS b FROM snippets_fts "
                     f"JOIN snippets s ON s.rowid = snippets_fts.rowid WHERE snippets_fts MATCH ?{extra} "
                     f"ORDER BY snippets_fts.rowid DESC LIMIT {SCAN_CAP}")
            sql = (f"SELECT s.id, NULL, -c.b * s.trust AS score, s.code_sha256, s.rowid, -c.b FROM ({inner}) AS c "
                   "JOIN snippets s ON s.rowid = c.rowid ORDER BY score DESC, s.trust DESC, s.id LIMIT ?")
            return self._read(sql, [expression, *params, want * 2])
        inner = (f"SELECT rowid, {bm25} AS b FROM snippets_fts WHERE snippets_fts MATCH ? "
                 f"ORDER BY rowid DESC LIMIT {SCAN_CAP}")
        sql = (
            f"SELECT s.id, NULL, -c.b * s.trust AS score, s.code_sha256, s.rowid, -c.b FROM "
            f"(SELECT rowid, b FROM ({inner}) ORDER BY b LIMIT {max(CANDIDATES, want * 3)}) AS c "
            f"JOIN snippets s ON s.rowid = c.rowid WHERE 1{extra} "
            "ORDER BY score DESC, s.trust DESC, s.id LIMIT ?"
        )
        return self._read(sql, [expression, *params, want * 2])

    # ------------------------------------------------------------ flags and reviews

    def flag(self, snippet_id: str, reason: str, kind: str = "other", by: str | None = None) -> Flag:
        """Raise a flag on a snippet; kept forever, resolvable later."""
        if kind not in FLAG_KINDS:
            raise LibraryError(f"flag kind must be one of {', '.join(FLAG_KINDS)}; got {kind!r}")
        if not reason or not reason.strip():
            raise LibraryError("a flag needs a reason")
        s = self.get(snippet_id)
        flag = Flag(kind=kind, reason=reason.strip(), by=acting_person(by), when=utcnow(),
                    revision=s.revision)
        with self.transaction() as conn:
            flag.id = conn.execute(
                "INSERT INTO flags(snippet_id, revision, kind, reason, by, at) VALUES (?,?,?,?,?,?)",
                (s.id, s.revision, flag.kind, flag.reason, flag.by, flag.when),
            ).lastrowid
            _refresh_trust_current(conn, s.id)
        return flag

    def resolve_flag(
        self, snippet_id: str, flag_id: int, note: str = "", by: str | None = None
    ) -> Flag:
        """Mark one open flag resolved, with who, when and a note."""
        s = self.get(snippet_id)
        if not isinstance(flag_id, int) or not 0 < flag_id < 2**63:  # SQLite integers are 64-bit
            raise NotFound(f"snippet {s.id} has no flag {flag_id}")
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT resolved FROM flags WHERE id = ? AND snippet_id = ?", (flag_id, s.id)
            ).fetchone()
            if row is None:
                raise NotFound(f"snippet {s.id} has no flag {flag_id}")
            if row[0]:
                raise LibraryError(f"flag {flag_id} is already resolved")
            conn.execute(
                "UPDATE flags SET resolved = 1, resolved_by = ?, resolved_at = ?, resolution = ? "
                "WHERE id = ?",
                (acting_person(by), utcnow(), note, flag_id),
            )
            _refresh_trust_current(conn, s.id)
        return next(f for f in self.get(s.id).flags if f.id == flag_id)

    def review(
        self, snippet_id: str, status: str, note: str = "", by: str | None = None,
        revision: int | None = None,
    ) -> ReviewEvent:
        """Approve or reject the current revision (or the given one, which must be current)."""
        if status not in ("approved", "rejected"):
            raise LibraryError(f"review status must be approved or rejected; got {status!r}")
        s = self.get(snippet_id)
        if revision is not None and revision != s.revision:
            raise LibraryError(
                f"snippet {s.id} is at revision {s.revision}, not {revision}; review what is current"
            )
        event = ReviewEvent(status=status, by=acting_person(by), when=utcnow(),
                            revision=s.revision, note=note or "")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO reviews(snippet_id, revision, status, by, at, note) VALUES (?,?,?,?,?,?)",
                (s.id, event.revision, event.status, event.by, event.when, event.note),
            )
            _refresh_trust_current(conn, s.id)
        return event

    # ------------------------------------------------------------ sources and runs

    def add_source(self, source: RegisteredSource) -> RegisteredSource:
        """Register a source; an existing id is an error."""
        source.added = source.added or utcnow()
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM sources WHERE id = ?", (source.id,)).fetchone():
                raise LibraryError(f"source {source.id!r} is already registered")
            conn.execute(
                "INSERT INTO sources(id, kind, url, data) VALUES (?,?,?,?)",
                (source.id, source.kind, source.url, json.dumps(source.stored(), sort_keys=True)),
            )
        return source

    def save_source(self, source: RegisteredSource) -> None:
        """Write a registered source's state back (insert or replace)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sources(id, kind, url, data) VALUES (?,?,?,?)",
                (source.id, source.kind, source.url, json.dumps(source.stored(), sort_keys=True)),
            )

    def source(self, source_id: str) -> RegisteredSource:
        rows = self._read("SELECT data FROM sources WHERE id = ?", (source_id,))
        if not rows:
            raise NotFound(f"no source {source_id!r}; see `codedistiller sources`")
        return RegisteredSource.from_dict(json.loads(rows[0][0]))

    def sources(self, *, include_removed: bool = False) -> list[RegisteredSource]:
        out = [RegisteredSource.from_dict(json.loads(r[0]))
               for r in self._read("SELECT data FROM sources ORDER BY id")]
        return [s for s in out if include_removed or s.state != "removed"]

    def remove_source(self, source_id: str) -> int:
        """Mark a source removed and retire its snippets; returns how many were retired."""
        src = self.source(source_id)
        with self.transaction():
            src.state = "removed"
            self.save_source(src)
            return self.retire(self.ids_for_source(source_id))

    def start_run(self, source_id: str | None) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "INSERT INTO runs(source_id, started) VALUES (?, ?)", (source_id, utcnow())
            ).lastrowid

    def finish_run(self, run_id: int, counts: dict[str, int], error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET finished = ?, counts = ?, error = ? WHERE id = ?",
                (utcnow(), json.dumps(counts, sort_keys=True), error, run_id),
            )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT id, source_id, started, finished, counts, error FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "source_id": r[1], "started": r[2], "finished": r[3],
             "counts": json.loads(r[4]), "error": r[5]}
            for r in rows
        ]

    def set_progress(self, key: str, value: ProgressEntry) -> None:
        """Publish what a long job (the distiller, the daemon) is doing, for others to read."""
        data = {k: v for k, v in value.to_dict().items() if k not in ("updated", "alive")}
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO progress(key, value, updated) VALUES (?,?,?)",
                (key, json.dumps(data, sort_keys=True), utcnow()),
            )

    def progress(self) -> dict[str, ProgressEntry]:
        """What long jobs published, each with ``alive``: whether its process still runs here.
        An entry that does not fit the record (written by another version) says so in ``detail``."""
        out = {}
        for key, value, updated in self._read("SELECT key, value, updated FROM progress ORDER BY key"):
            try:
                entry = ProgressEntry.from_dict({**json.loads(value), "updated": updated})
            except (ValueError, TypeError) as exc:  # RecordError is a ValueError, as is bad JSON
                entry = ProgressEntry(step="unknown", detail=f"unreadable progress entry: {exc}", updated=updated)
            if entry.pid is not None:
                entry.alive = _process_alive(entry.pid)
            out[key] = entry
        return out

    # ------------------------------------------------------------ status

    def validation_counts(self) -> dict[str, int]:
        """Active snippets by validation status (an index answers it: cheap on every search)."""
        return dict(self._read(
            "SELECT validation_status, count(*) FROM snippets WHERE lifecycle = 'active' GROUP BY 1"
        ))

    def waiting_by_layer(self) -> dict[str, int]:
        """Active snippets waiting for validation (pending or stale) by the layer of a package
        source they were read from: "installed", "sdist", "repository", or "git" for a git source."""
        return dict(self._read(
            "SELECT coalesce(json_extract(data, '$.source.layer'), 'git'), count(*) FROM snippets "
            "WHERE lifecycle = 'active' AND validation_status IN ('pending', 'stale') GROUP BY 1"
        ))

    def any_with_validation(self, status: str) -> bool:
        """Whether any active snippet has this validation status (an indexed lookup)."""
        return bool(self._read(
            "SELECT EXISTS(SELECT 1 FROM snippets WHERE lifecycle = 'active' AND validation_status = ?)",
            (status,),
        )[0][0])

    def building(self) -> dict[str, int] | None:
        """How far the library is from built, or None when nothing is waiting.

        A library is still being built while snippets wait for validation or a
        source has never been distilled (and has not failed). Asked on every
        search, so a built library costs one indexed lookup.
        """
        never = sum(1 for s in self.sources()
                    if not (s.last_commit or s.last_version) and s.state != "error")
        if not never and not self.any_with_validation("pending"):
            return None
        counts = self.validation_counts()
        return {
            "snippets": sum(counts.values()),
            "validated": counts.get("passed", 0),
            "pending": counts.get("pending", 0),
            "sources_waiting": never,
        }

    def status(self) -> LibraryStatus:
        """Counts by state, sources and where the library lives; ``to_dict()`` is its JSON."""

        def grouped(column: str) -> dict[str, int]:
            return dict(self._read(
                f"SELECT {column}, count(*) FROM snippets WHERE lifecycle = 'active' GROUP BY 1"
            ))

        size = sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )
        return LibraryStatus(
            path=str(self.path),
            schema_version=self.schema_version,
            snippets=self.count(),
            retired=self.count(include_retired=True) - self.count(),
            validation=grouped("validation_status"),
            review=grouped("review_status"),
            origin=grouped("origin_kind"),
            flagged=self._read(
                "SELECT count(*) FROM snippets WHERE lifecycle = 'active' AND open_flags > 0"
            )[0][0],
            sources=self.sources(),
            progress=self.progress(),
            size_bytes=size,
            # How snippets were contained when validated: isolation level -> count.
            isolation=dict(self._read(
                "SELECT json_extract(data, '$.validation.isolation'), count(*) FROM snippets "
                "WHERE lifecycle = 'active' AND json_extract(data, '$.validation.isolation') "
                "IS NOT NULL GROUP BY 1")),
        )

    # ------------------------------------------------------------ export and import

    def export(self, out: IO[str]) -> int:
        """Write every snippet as JSON Lines (sorted by id, stable keys); returns the count.

        A snippet whose validation drew figures carries them in ``figures`` (digest ->
        base64 PNG), so the file alone restores them; readers that do not know the key
        ignore it.
        """
        n = 0
        for s in self.all():
            data = s.to_dict()
            figures = {o.sha256: base64.b64encode(png).decode("ascii")
                       for o in s.validation.figures if (png := self.figures.get(o.sha256))}
            if figures:
                data["figures"] = figures
            out.write(json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
        return n

    def prune_figures(self, min_age: float = 3600.0) -> int:
        """Remove stored figures no snippet names any more (a new revision's run replaced
        them); only files untouched for ``min_age`` seconds, so a validation that has written
        its figure but not yet its record keeps it. Returns how many went."""
        named: set[str] = set()
        for (data,) in self._read("SELECT data FROM snippets WHERE data LIKE '%\"figure\"%'"):
            outputs = (json.loads(data).get("validation") or {}).get("outputs") or []
            named.update(o.get("sha256") for o in outputs if isinstance(o, dict) and o.get("kind") == "figure")
        now, removed = time.time(), 0
        for path in self.figures.root.glob("*/*.png"):
            try:
                if path.stem not in named and now - path.stat().st_mtime >= min_age:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    @staticmethod
    def _incoming_figures(line: str, s: Snippet) -> dict[str, bytes]:
        """The figures an export line carries for ``s``, each checked as a PNG whose digest is
        its name; a figure output with no such figure here or there is dropped from ``s``."""
        try:
            given = json.loads(line).get("figures")
        except (ValueError, AttributeError, RecursionError):
            given = None
        given = given if isinstance(given, dict) else {}
        found: dict[str, bytes] = {}
        for digest, text in given.items():
            if not is_digest(digest) or not isinstance(text, str) or len(text) > MAX_FIGURE_BYTES * 2:
                continue
            try:
                png = check_png(base64.b64decode(text, validate=True))[0]
            except (BadPNG, ValueError):
                continue
            if hashlib.sha256(png).hexdigest() == digest:
                found[digest] = png
        return found

    def import_(self, lines: Iterable[str]) -> dict[str, int]:
        """Merge JSON Lines into the library by id and revision; all or nothing.

        A newer incoming revision replaces the content; an older or equal one
        keeps what is here. Flags and reviews from both sides are kept.
        """
        incoming: list[Snippet] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                s = Snippet.from_json(line)
            except RecordError as exc:
                raise LibraryError(f"line {number}: {exc}") from None
            if s.validation.outputs:
                figures = self._incoming_figures(line, s)
                s.validation.outputs = [o for o in s.validation.outputs if o.kind != "figure"
                                        or o.sha256 in figures or self.figures.has(o.sha256 or "")]
                hold(s.validation, figures)
            incoming.append(s)
        counts = {"added": 0, "updated": 0, "kept": 0}
        with self.transaction() as conn:
            for s in incoming:
                row = conn.execute(
                    "SELECT revision FROM snippets WHERE id = ?", (s.id,)
                ).fetchone()
                if row is None:
                    counts["added"] += 1
                    self._write_row(conn, s)
                elif s.revision > row[0]:
                    counts["updated"] += 1
                    self._write_row(conn, s)
                else:
                    counts["kept"] += 1
                self._add_history(conn, s)
        return counts
