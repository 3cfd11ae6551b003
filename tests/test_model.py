"""The Snippet record: JSON round-trip, required keys, validation of values."""

from __future__ import annotations

import json

import pytest

from jupyter_codedistiller.model import (
    SCHEMA_VERSION,
    Flag,
    RecordError,
    Review,
    ReviewEvent,
    Snippet,
    Source,
    snippet_id,
)

from .conftest import make_snippet


def test_round_trip_keeps_every_part() -> None:
    s = make_snippet("km", origin="generated", model="local-coder")
    s.flags.append(Flag(kind="incorrect", reason="wrong column", by="ana", when="2026-01-01T00:00:00+00:00", id=3))
    s.review = Review.for_revision(
        [ReviewEvent(status="approved", by="bo", when="2026-01-02T00:00:00+00:00", revision=1, note="ok")], 1
    )
    again = Snippet.from_json(s.to_json())
    assert again == s
    assert again.to_json() == s.to_json()


def test_json_has_the_keys_every_interface_uses() -> None:
    data = json.loads(make_snippet("km").to_json())
    for key in ("id", "revision", "title", "summary", "code", "tags", "imports", "requirements",
                "source", "origin", "validation", "review", "flags", "lifecycle", "schema_version"):
        assert key in data
    for key in ("kind", "url", "commit", "path", "line_start", "line_end", "package", "version", "license"):
        assert key in data["source"]
    assert data["origin"]["kind"] == "verbatim" and "model" in data["origin"]
    assert data["validation"]["status"] == "passed"
    assert data["review"] == {"status": "unreviewed", "history": []}
    assert data["schema_version"] == SCHEMA_VERSION
    assert list(data) == sorted(data)


def test_id_is_derived_from_place_not_code() -> None:
    assert snippet_id("src", "a.py", "script") == snippet_id("src", "a.py", "script")
    assert snippet_id("src", "a.py", "script") != snippet_id("src", "b.py", "script")


@pytest.mark.parametrize(
    "change",
    [
        {"lifecycle": "deleted"},
        {"validation": {"status": "great"}},
        {"origin": {"kind": "magic"}},
        {"review": {"status": "maybe"}},
        {"schema_version": SCHEMA_VERSION + 1},
        {"id": ""},
        {"revision": 0},
        {"unknown_field_is_ignored": 1, "source": {"kind": "ftp"}},
    ],
)
def test_bad_records_are_refused(change: dict) -> None:
    data = make_snippet("km").to_dict()
    data.update(change)
    with pytest.raises(RecordError):
        Snippet.from_dict(data)


def test_not_json_is_a_record_error() -> None:
    with pytest.raises(RecordError, match="not JSON"):
        Snippet.from_json("{nope")


def test_review_of_one_revision_does_not_carry_over() -> None:
    history = [ReviewEvent(status="approved", by="bo", when="t", revision=1)]
    assert Review.for_revision(history, 1).status == "approved"
    assert Review.for_revision(history, 2).status == "unreviewed"


def test_source_link_points_at_commit_and_lines() -> None:
    src = Source(kind="git", url="https://example.org/lab/repo.git", commit="abc123",
                 path="examples/km.py", line_start=3, line_end=9)
    assert src.link() == "https://example.org/lab/repo/blob/abc123/examples/km.py#L3-L9"
    assert Source(kind="git", url="file:///tmp/repo").link() is None


def test_package_link_names_a_file_only_at_a_commit_seen() -> None:
    repo = "https://github.com/lab/tinydist"
    at_tag = Source(kind="package", url="pkg:tinydist", package="tinydist", version="1.0",
                    repository=repo, layer="repository", tag="v1.0", commit="c0ffee",
                    path="src/tinydist/core.py", line_start=4)
    assert at_tag.link() == f"{repo}/blob/c0ffee/src/tinydist/core.py#L4"
    for layer in ("sdist", "installed"):
        unpinned = Source(kind="package", url="pkg:tinydist", package="tinydist", version="1.0",
                          repository=repo, layer=layer, path="tinydist/core.py", line_start=4)
        assert unpinned.link() == repo, layer


def test_where_a_snippet_sits_in_files_and_notebooks() -> None:
    script = Source(kind="git", url="https://example.org/lab/repo", commit="c", path="ex/km.py",
                    line_start=10, line_end=42)
    assert script.anchor() == "#L10-L42" and script.where() == "ex/km.py lines 10-42"
    cells = Source(kind="git", url="https://example.org/lab/repo", commit="c", path="nb/t.ipynb",
                   line_start=3, line_end=3)
    assert cells.anchor() == "#cell3" and cells.where() == "nb/t.ipynb cell 3"
    assert cells.link() == "https://example.org/lab/repo/blob/c/nb/t.ipynb#cell3"
    assert Source(path="a.py").where() == "a.py" and Source(path="a.py").anchor() == ""
