"""The store: writes, revisions, ranking, hostile queries, migrations, concurrency, export/import."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyter_codedistiller.library import (
    INDEX_VERSION,
    SCHEMA_LATEST,
    Library,
    LibraryError,
    NotFound,
    connect,
    migrate,
    reindex,
)
from jupyter_codedistiller.model import Flag, Snippet, Validation
from jupyter_codedistiller.people import acting_person

from .conftest import make_snippet

HOSTILE_QUERIES = [
    "", " ", '"', '""', '"unbalanced', "kaplan-meier", "C++", "NEAR(kaplan meier, 2)", "NEAR",
    "AND", "OR OR OR", "NOT kaplan", "kaplan AND", "*", "kap*", "^kaplan", "title:kaplan",
    "{title summary}: x", "(kaplan", "kaplan)", "a:b:c", "😀", "🧬 gene expression", "\x00",
    "'; DROP TABLE snippets; --",
    "%", "_", "\\", "ñandú kaplan", "x" * 5000, "kaplan " * 200, "-", "+", "@#$%^&*()",
    "\u202e", "日本語 生存", "col1 - col2", "df[\"T\"]", "f(x)=y", "SELECT * FROM snippets_fts",
]


def ids(results) -> list[str]:
    return [r.snippet.id for r in results]


def test_put_get_and_prefix(library: Library) -> None:
    s = library.put(make_snippet("km"))
    assert library.get(s.id) == s
    assert library.get(s.id[:10]).id == s.id
    with pytest.raises(NotFound):
        library.get("cd-doesnotexist")


def test_database_is_wal_with_busy_timeout(library: Library) -> None:
    conn = sqlite3.connect(library.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert library._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_upsert_bumps_revision_only_when_code_changes(library: Library) -> None:
    s = make_snippet("km")
    assert library.upsert([s])["added"] == 1
    library.flag(s.id, "check the censoring column", kind="incorrect")
    same = make_snippet("km")
    same.title = "A new title"
    counts = library.upsert([same])
    assert counts["updated"] == 0
    stored = library.get(s.id)
    assert stored.revision == 1 and stored.title == "A new title"
    changed = make_snippet("km", code="print('changed')\n")
    assert library.upsert([changed])["updated"] == 1
    stored = library.get(s.id)
    assert stored.revision == 2 and stored.code == "print('changed')\n"
    assert len(stored.flags) == 1, "a refresh must never drop a flag"


def test_retired_snippets_are_hidden_then_revived(library: Library) -> None:
    s = make_snippet("km")
    library.upsert([s])
    assert library.retire([s.id]) == 1
    assert library.search("kaplan") == []
    assert ids(library.search("kaplan", include_retired=True)) == [s.id]
    assert library.upsert([make_snippet("km")])["revived"] == 1
    assert ids(library.search("kaplan")) == [s.id]


def _equal_text(library: Library, **kinds: dict) -> dict[str, str]:
    out = {}
    for name, kw in kinds.items():
        s = make_snippet(name, **kw)
        library.put(s)
        out[name] = s.id
    return out


def test_passed_outranks_failed_at_equal_relevance(library: Library) -> None:
    got = _equal_text(library, failed={"validation": "failed"}, passed={"validation": "passed"})
    assert ids(library.search("kaplan meier group")) == [got["passed"], got["failed"]]


def test_flagged_ranks_below_unflagged(library: Library) -> None:
    got = _equal_text(library, a={}, b={})
    library.flag(got["a"], "gives wrong medians", kind="incorrect")
    assert ids(library.search("kaplan meier")) == [got["b"], got["a"]]
    flagged = library.get(got["a"])
    library.resolve_flag(flagged.id, flagged.flags[0].id, note="fixed upstream")
    assert library.get(got["a"]).open_flags == []


def test_trust_order_and_hidden_states(library: Library) -> None:
    got = _equal_text(
        library,
        approved={},
        plain={},
        stale={"validation": "stale"},
        generated={"origin": "generated", "model": "coder"},
        rejected={},
    )
    library.review(got["approved"], "approved", note="checked against the paper")
    library.review(got["rejected"], "rejected", note="misuses the API")
    order = ids(library.search("kaplan meier"))
    assert order[0] == got["approved"]
    assert order.index(got["plain"]) < order.index(got["stale"])
    assert order.index(got["plain"]) < order.index(got["generated"])
    assert got["rejected"] not in order
    assert got["rejected"] in ids(library.search("kaplan", include_rejected=True))
    assert ids(library.search("kaplan", review="rejected")) == [got["rejected"]]


def test_text_relevance_comes_first(library: Library) -> None:
    km = make_snippet("km", validation="failed")
    other = make_snippet("pca", title="PCA of expression matrix", summary="Principal components.",
                         code="from sklearn.decomposition import PCA\nPCA(2)\n", package="scikit-learn",
                         tags=["expression"])
    library.put(km)
    library.put(other)
    assert ids(library.search("kaplan meier")) == [km.id]
    assert ids(library.search("principal components expression")) == [other.id]
    assert ids(library.search("KaplanMeierFitter")) == [km.id]
    assert ids(library.search("kaplan pca")) != [], "no hit for all words falls back to any word"


def test_filters(library: Library) -> None:
    a = make_snippet("a", package="lifelines", license="MIT", tags=["survival"])
    b = make_snippet("b", package="scikit-survival", license="GPL-3.0-only", tags=["cox"],
                     validation="failed", origin="assembled")
    library.put(a)
    library.put(b)
    assert ids(library.search("kaplan", package="lifelines")) == [a.id]
    assert ids(library.search("kaplan", license="GPL-3.0-only")) == [b.id]
    assert ids(library.search("kaplan", tag="cox")) == [b.id]
    assert ids(library.search("kaplan", validation="failed")) == [b.id]
    assert ids(library.search("kaplan", origin="assembled")) == [b.id]
    assert ids(library.search("kaplan", source="fixture", limit=5)) == [a.id, b.id]
    with pytest.raises(LibraryError, match="unknown filter"):
        library.search("kaplan", colour="red")
    with pytest.raises(LibraryError, match="validation must be one of"):
        library.search("kaplan", validation="great")
    with pytest.raises(LibraryError, match="limit"):
        library.search("kaplan", limit=0)


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_every_typed_string_is_a_valid_query(library: Library, query: str) -> None:
    library.put(make_snippet("km"))
    results = library.search(query)
    assert isinstance(results, list)
    assert library.count() == 1


def test_empty_query_lists_most_trusted(library: Library) -> None:
    got = _equal_text(library, failed={"validation": "failed"}, passed={})
    assert ids(library.search("")) == [got["passed"], got["failed"]]


def test_flag_and_review_history_is_kept(library: Library) -> None:
    s = library.put(make_snippet("km"))
    library.flag(s.id, "first", by="ana")
    library.flag(s.id, "second", kind="unsafe")
    library.review(s.id, "approved", note="fine", by="bo")
    library.review(s.id, "rejected", note="on second look, no")
    got = library.get(s.id)
    assert [f.reason for f in got.flags] == ["first", "second"]
    assert [f.by for f in got.flags] == ["ana", "tester"]
    assert [e.status for e in got.review.history] == ["approved", "rejected"]
    assert got.review.status == "rejected"
    with pytest.raises(LibraryError, match="kind"):
        library.flag(s.id, "x", kind="boring")
    with pytest.raises(LibraryError, match="reason"):
        library.flag(s.id, "   ")
    with pytest.raises(LibraryError, match="approved or rejected"):
        library.review(s.id, "maybe")


def test_approval_does_not_carry_over_to_a_changed_revision(library: Library) -> None:
    s = make_snippet("km")
    library.upsert([s])
    library.review(s.id, "approved")
    assert library.search("kaplan")[0].snippet.review.status == "approved"
    library.upsert([make_snippet("km", code="import lifelines\nprint(lifelines.__version__)\n")])
    got = library.get(s.id)
    assert got.revision == 2
    assert got.review.status == "unreviewed"
    assert len(got.review.history) == 1
    with pytest.raises(LibraryError, match="revision 2"):
        library.review(s.id, "approved", revision=1)


def test_set_validation_ignores_outdated_revision(library: Library) -> None:
    s = make_snippet("km", validation="pending")
    library.upsert([s])
    library.upsert([make_snippet("km", code="print(1)\n", validation="pending")])
    library.set_validation(s.id, Validation(status="passed"), revision=1)
    assert library.get(s.id).validation.status == "pending"
    library.set_validation(s.id, Validation(status="passed"), revision=2)
    assert library.get(s.id).validation.status == "passed"


def test_acting_person_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert acting_person("explicit") == "explicit"
    assert acting_person() == "tester"
    monkeypatch.delenv("CODEDISTILLER_USER")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Git Person\n")
    assert acting_person() == "Git Person"
    (tmp_path / "gitconfig").write_text("")
    assert acting_person()  # the OS user


# ------------------------------------------------------------------ migrations


def _insert_old_snippet(conn: sqlite3.Connection, s: Snippet) -> int:
    """Write ``s`` as an older schema stored it (no flags or review in its data); its rowid."""
    data = s.to_dict()
    data.pop("flags")
    data.pop("review")
    conn.execute(
        "INSERT INTO snippets(id, revision, code_sha256, source_id, package, origin_kind, "
        "validation_status, license, lifecycle, updated, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (s.id, 1, s.code_sha256, "fixture", "lifelines", "verbatim", "passed", "MIT", "active",
         "2025-01-01", json.dumps(data)),
    )
    return conn.execute("SELECT rowid FROM snippets WHERE id = ?", (s.id,)).fetchone()[0]


def test_migration_from_schema_version_1(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = connect(path)
    assert migrate(conn, target=1) == 1
    s = make_snippet("km")
    rowid = _insert_old_snippet(conn, s)
    conn.execute("INSERT INTO snippets_fts(rowid, title, summary, tags, packages, identifiers) "
                 "VALUES (?, ?, ?, '', 'lifelines', '')", (rowid, s.title, s.summary))
    conn.execute("INSERT INTO flags(snippet_id, revision, kind, reason, by, at) "
                 "VALUES (?, 1, 'incorrect', 'old flag', 'ana', '2025-01-02')", (s.id,))
    conn.execute("INSERT INTO reviews(snippet_id, revision, status, by, at, note) "
                 "VALUES (?, 1, 'approved', 'bo', '2025-01-03', 'ok')", (s.id,))
    conn.close()

    with Library(path) as lib:
        assert lib.schema_version == SCHEMA_LATEST == 6
        got = lib.get(s.id)
        assert got.code == s.code
        assert [f.reason for f in got.flags] == ["old flag"]
        assert got.review.status == "approved"
        row = lib._conn.execute("SELECT open_flags, review_status, trust FROM snippets").fetchone()
        assert row[0] == 1 and row[1] == "approved" and row[2] < 1.5 * 1.3
        assert ids(lib.search("kaplan")) == [s.id]
        assert lib.runs() == []


def test_migration_from_schema_version_5_drops_the_unused_terms_table_and_indexes_again(
        tmp_path: Path) -> None:
    # A version 5 library: its fts5vocab table, and a snippet indexed by the older index text
    # (a British spelling as written). Opening it drops the table and indexes the snippet again.
    path = tmp_path / "v5.db"
    conn = connect(path)
    assert migrate(conn, target=5) == 5
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'snippets_terms'").fetchone()[0] == 1
    s = make_snippet("norm", title="Normalise the counts per cell", summary="")
    rowid = _insert_old_snippet(conn, s)
    conn.execute("INSERT INTO snippets_fts(rowid, title) VALUES (?, ?)", (rowid, s.title))
    assert conn.execute("SELECT count(*) FROM snippets_fts WHERE snippets_fts MATCH 'normalize'").fetchone()[0] == 0
    conn.close()

    with Library(path) as lib:
        assert lib.schema_version == 6
        assert lib._read("SELECT count(*) FROM sqlite_master WHERE name = 'snippets_terms'")[0][0] == 0
        assert lib._read("SELECT value FROM meta WHERE key = 'index_version'") == [(INDEX_VERSION,)]
        assert ids(lib.search("normalize counts")) == [s.id]
        assert lib.get(s.id).title == s.title
    with Library(path) as again:  # indexed once: a second open finds the version current
        assert not reindex(again._conn)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LibraryError, match="newer"):
        Library(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="cannot open library"):
        Library(path)


# ------------------------------------------------------------------ concurrency

WRITER = textwrap.dedent("""
    import sys
    from jupyter_codedistiller.library import Library
    from jupyter_codedistiller.model import Snippet, snippet_id, Source
    lib = Library(sys.argv[1]); who = sys.argv[2]; n = int(sys.argv[3])
    for i in range(n):
        s = Snippet(id=snippet_id(who, f"f{i}.py", "script"), code=f"x = {i}\\n",
                    title=f"kaplan {who} {i}", source=Source(kind="local", source_id=who))
        lib.upsert([s])
        lib.flag(s.id, f"flag {i}", by=who)
        lib.review(s.id, "approved", by=who)
    print("ok")
""")

READER = textwrap.dedent("""
    import sys, time
    from jupyter_codedistiller.library import Library
    lib = Library(sys.argv[1]); deadline = time.time() + float(sys.argv[2]); n = 0
    while time.time() < deadline:
        lib.search("kaplan", limit=20); lib.status(); n += 1
    print("ok", n)
""")


def test_two_writers_and_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    Library(path).close()
    n = 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("alice", "bob")]
    procs.append(subprocess.Popen([sys.executable, "-c", READER, str(path), "4"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.startswith("ok"), (out, err)
        assert "locked" not in err
    with Library(path) as lib:
        assert lib.count() == 2 * n
        flags = lib._conn.execute("SELECT count(*) FROM flags").fetchone()[0]
        reviews = lib._conn.execute("SELECT count(*) FROM reviews").fetchone()[0]
        assert flags == reviews == 2 * n
        assert lib._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------ export / import


def test_export_import_round_trip(library: Library, tmp_path: Path) -> None:
    a = library.put(make_snippet("a"))
    library.put(make_snippet("b", origin="generated", model="coder"))
    library.flag(a.id, "check", kind="outdated")
    library.review(a.id, "approved", note="ok")
    buf = io.StringIO()
    assert library.export(buf) == 2
    text = buf.getvalue()
    lines = text.splitlines()
    assert all(json.loads(line)["id"] for line in lines)
    assert lines == sorted(lines, key=lambda line: json.loads(line)["id"])

    with Library(tmp_path / "other.db") as other:
        assert other.import_(io.StringIO(text)) == {"added": 2, "updated": 0, "kept": 0}
        out = io.StringIO()
        other.export(out)
        assert out.getvalue() == text
        assert other.import_(io.StringIO(text)) == {"added": 0, "updated": 0, "kept": 2}
        assert len(other.get(a.id).flags) == 1, "importing twice must not duplicate history"


def test_import_keeps_local_flags_and_reviews(library: Library, tmp_path: Path) -> None:
    s = make_snippet("km")
    library.upsert([s])
    buf = io.StringIO()
    library.export(buf)
    exported = buf.getvalue()
    library.flag(s.id, "local doubt", by="me")
    library.review(s.id, "approved", by="me")
    newer = json.loads(exported)
    newer.update(revision=2, code="print('upstream changed')\n")
    newer["flags"] = [{"kind": "unsafe", "reason": "team flag", "by": "team", "when": "2026-01-01T00:00:00+00:00"}]
    counts = library.import_(io.StringIO(exported + json.dumps(newer) + "\n"))
    assert counts["updated"] == 1
    got = library.get(s.id)
    assert got.revision == 2 and got.code == "print('upstream changed')\n"
    assert sorted(f.reason for f in got.flags) == ["local doubt", "team flag"]
    assert [e.by for e in got.review.history] == ["me"]
    assert got.review.status == "unreviewed", "approval of revision 1 does not carry to 2"


def test_bad_import_changes_nothing(library: Library) -> None:
    s = library.put(make_snippet("km"))
    good = Snippet.from_dict(make_snippet("other").to_dict()).to_json()
    for bad in ["{not json", json.dumps({"id": "x", "code": 1, "revision": "two"}), "[1, 2]"]:
        with pytest.raises(LibraryError, match="line 2"):
            library.import_(io.StringIO(good + "\n" + bad + "\n"))
    assert [x.id for x in library.all()] == [s.id]


def test_filters_apply_before_the_scan_cap(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    import jupyter_codedistiller.library as store

    monkeypatch.setattr(store, "SCAN_CAP", 5)
    older = [make_snippet(f"old{i}", package="lifelines", title=f"data step {i}") for i in range(8)]
    newer = [make_snippet(f"new{i}", package="pandas", title=f"data step {i}") for i in range(8)]
    library.upsert(older)
    library.upsert(newer)
    assert len(library.search("data", limit=20)) == 5, "a very common word ranks among the newest matches"
    found = library.search("data", package="lifelines", limit=20)
    assert len(found) == 5 and {r.snippet.source.package for r in found} == {"lifelines"}


def test_bulk_load_stores_and_indexes_as_upsert_does(library: Library, tmp_path: Path) -> None:
    made = [make_snippet(f"bulk{i}", title=f"Kaplan-Meier fit number {i}") for i in range(7)]
    assert library.load(made, batch=3) == 7
    other = Library(tmp_path / "other.db")
    other.upsert(make_snippet(f"bulk{i}", title=f"Kaplan-Meier fit number {i}") for i in range(7))
    trust = "SELECT id, trust, review_status, open_flags, lifecycle FROM snippets ORDER BY id"
    assert library._read(trust) == other._read(trust)
    assert sorted(ids(library.search("kaplan", limit=20))) == sorted(ids(other.search("kaplan", limit=20)))
    assert library.get(made[0].id).revision == 1
    # a stored id goes through upsert (a changed code is the next revision); history is kept
    changed = make_snippet("bulk0", title="Kaplan-Meier fit number 0", code="print('changed')\n")
    flagged = make_snippet("flagged")
    flagged.flags = [Flag(id=0, revision=1, kind="incorrect", reason="wrong", by="ana", when="2025-01-01")]
    assert library.load([changed, flagged]) == 1
    assert library.get(changed.id).revision == 2 and library.count() == 8
    assert [f.reason for f in library.get(flagged.id).flags] == ["wrong"]
    assert library._read("SELECT open_flags FROM snippets WHERE id = ?", [flagged.id]) == [(1,)]
