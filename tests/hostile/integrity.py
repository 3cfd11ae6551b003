"""What must hold of a library file after anything happened to it (a kill, a race, an attack).

``library_problems(db)`` lists every violation, so a test asserts it is empty
and a benchmark counts it: SQLite's own ``integrity_check`` and FTS5's
``integrity-check``, every snippet row a whole ``Snippet`` whose columns agree
with its record, the full-text index holding exactly one row per snippet,
derived ranking columns agreeing with the flags and reviews kept, no flag or
review pointing at a snippet that is not there, every source and progress
record readable.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import RecordError, RegisteredSource, Snippet, code_digest


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=60, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


def library_problems(db: Path) -> list[str]:
    """Everything wrong with the library file ``db``; an empty list when all holds."""
    problems: list[str] = []
    conn = connect(db)
    try:
        checked = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if checked != ["ok"]:
            problems.append("integrity_check: " + "; ".join(checked[:5]))
        try:
            conn.execute("INSERT INTO snippets_fts(snippets_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            problems.append(f"FTS5 integrity-check: {exc}")
        rows = conn.execute(
            "SELECT rowid, id, revision, code_sha256, source_id, origin_kind, validation_status, "
            "lifecycle, review_status, open_flags, data FROM snippets").fetchall()
        for _rowid, sid, revision, digest, source_id, origin, validation, lifecycle, review, flags, data in rows:
            try:
                s = Snippet.from_dict(json.loads(data))
            except (ValueError, RecordError) as exc:
                problems.append(f"{sid}: stored record does not parse: {exc}")
                continue
            record = (s.id, s.revision, code_digest(s.code), s.source.source_id, s.origin.kind,
                      s.validation.status, s.lifecycle)
            columns = (sid, revision, digest, source_id, origin, validation, lifecycle)
            if record != columns:
                problems.append(f"{sid}: columns {columns} disagree with the record {record}")
            latest = conn.execute(
                "SELECT status FROM reviews WHERE snippet_id = ? AND revision = ? "
                "ORDER BY id DESC LIMIT 1", (sid, revision)).fetchone()
            if review != (latest[0] if latest else "unreviewed"):
                problems.append(f"{sid}: review_status {review!r} disagrees with the reviews kept")
            open_count = conn.execute("SELECT count(*) FROM flags WHERE snippet_id = ? AND resolved = 0",
                                      (sid,)).fetchone()[0]
            if flags != open_count:
                problems.append(f"{sid}: open_flags {flags} but {open_count} open flags kept")
        snippet_rowids = {r[0] for r in rows}
        fts_rowids = {r[0] for r in conn.execute("SELECT rowid FROM snippets_fts")}
        if fts_rowids != snippet_rowids:
            problems.append(f"full-text index holds {len(fts_rowids)} rows for {len(snippet_rowids)} "
                            f"snippets ({len(fts_rowids - snippet_rowids)} orphaned, "
                            f"{len(snippet_rowids - fts_rowids)} missing)")
        ids = {r[1] for r in rows}
        for table in ("flags", "reviews"):
            orphans = {r[0] for r in conn.execute(f"SELECT snippet_id FROM {table}")} - ids
            if orphans:
                problems.append(f"{table} kept for snippets that are not there: {sorted(orphans)[:3]}")
        for (data,) in conn.execute("SELECT data FROM sources"):
            try:
                RegisteredSource.from_dict(json.loads(data))
            except (ValueError, TypeError, RecordError) as exc:
                problems.append(f"a source record does not parse: {exc}")
        for key, value in conn.execute("SELECT key, value FROM progress"):
            try:
                json.loads(value)
            except ValueError:
                problems.append(f"progress {key!r} is not JSON")
    finally:
        conn.close()
    return problems


def fingerprint(db: Path, source_id: str | None = None, *,
                active_only: bool = True) -> dict[str, tuple[int, str, str]]:
    """id -> (revision, code digest, lifecycle) of the snippets (of one source)."""
    conn = connect(db)
    try:
        sql = "SELECT id, revision, code_sha256, lifecycle FROM snippets WHERE 1"
        params: list[str] = []
        if source_id is not None:
            sql += " AND source_id = ?"
            params.append(source_id)
        if active_only:
            sql += " AND lifecycle = 'active'"
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(sql, params)}
    finally:
        conn.close()


def digests(db: Path, source_id: str | None = None) -> dict[str, str]:
    """id -> code digest of the active snippets (of one source): what a library offers."""
    return {sid: v[1] for sid, v in fingerprint(db, source_id).items()}


def dump(home: Path) -> str:
    """The whole library as text: every record with its flags and reviews, then the sources."""
    out = io.StringIO()
    with Library.open(home) as lib:
        lib.export(out)
        out.write(json.dumps([s.to_dict() for s in lib.sources(include_removed=True)], sort_keys=True))
    return out.getvalue()
