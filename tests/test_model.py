"""The Snippet record: JSON round-trip, required keys, validation of values."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest

from jupyter_codedistiller.model import (
    SCHEMA_VERSION,
    Flag,
    Place,
    ProgressEntry,
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
    """The id is a digest of source, path and anchor only, so notebooks' markers stay valid
    when the code changes; each part counts."""
    place = ("km", "examples/km.py", "script")
    digest = hashlib.sha256("\0".join(place).encode()).hexdigest()
    assert snippet_id(*place) == "cd-" + digest[:16]
    for changed in (("other", *place[1:]), (place[0], "b.py", place[2]), (*place[:2], "docstring:f")):
        assert snippet_id(*changed) != snippet_id(*place)
    with pytest.raises(TypeError):
        snippet_id(*place, "print(1)")  # the code is not an input


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
        {"source": {"kind": "ftp"}},
    ],
)
def test_bad_records_are_refused(change: dict) -> None:
    data = make_snippet("km").to_dict()
    data.update(change)
    with pytest.raises(RecordError):
        Snippet.from_dict(data)
    with pytest.raises(RecordError):
        Snippet.from_json(json.dumps(data))


def test_unknown_fields_are_ignored_not_kept() -> None:
    """A record written by a newer version that added a field still reads, without it."""
    s = make_snippet("km")
    data = s.to_dict()
    data["added_later"] = 1
    data["source"]["added_later"] = {"x": 1}
    s.also_at = [Place(path="docs/intro.md", anchor="md:km:1", line_start=3, line_end=5)]
    data["also_at"] = [{**asdict(s.also_at[0]), "added_later": 2}]
    for again in (Snippet.from_dict(data), Snippet.from_json(json.dumps(data))):
        assert again == s
        assert "added_later" not in again.to_dict() and "added_later" not in again.to_dict()["source"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("code",), 5, "snippet.code must be a string"),
        (("tags",), ["a", 2], "snippet.tags[1] must be a string"),
        (("requirements",), {"numpy": 1}, "snippet.requirements.numpy must be a string or null"),
        (("validation", "outputs"), [{"kind": "figure", "sha256": "../x"}],
         "snippet.validation.outputs[0].sha256 has characters it may not hold"),
        (("flags",), [{"kind": "other", "reason": "r", "by": "a"}], "snippet.flags[0].when is required"),
        (("review", "history"), [{"status": "maybe", "by": "a", "when": "t", "revision": 1}],
         "snippet.review.history[0].status must be one of approved, rejected; got 'maybe'"),
        (("source",), [], "snippet.source must be an object"),
        (("also_at",), [{"path": 5}], "snippet.also_at[0].path must be a string"),
        (("also_at",), ["README.md"], "snippet.also_at[0] must be an object"),
    ],
)
def test_an_import_names_the_field_that_does_not_fit(path: tuple, value: object, message: str) -> None:
    data = make_snippet("km").to_dict()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecordError) as refused:
        Snippet.from_json(json.dumps(data))
    assert str(refused.value) == f"malformed snippet: {message}"


def test_progress_entries_round_trip_and_refuse_misfits() -> None:
    entry = ProgressEntry(step="validate", source="lifelines", done=3, total=9, pid=7, counts={"added": 1})
    assert ProgressEntry.from_dict(entry.to_dict()) == entry
    with pytest.raises(RecordError, match="progress.done must be a whole number"):
        ProgressEntry.from_dict({"step": "validate", "done": "3"})
    with pytest.raises(RecordError, match="progress.step is required"):
        ProgressEntry.from_dict({"done": 3})


def test_the_generated_schema_and_types_match_the_declarations() -> None:
    """openapi.yaml's components and labextension/src/records.ts are what the records make
    (``python -m jupyter_codedistiller.schemafiles --write`` regenerates them)."""
    from jupyter_codedistiller import schemafiles

    assert schemafiles.differences() == []
    spec = schemafiles.components()
    assert spec["FlagBody"]["required"] == ["kind", "reason"]
    assert spec["FlagBody"]["properties"]["reason"] == {"type": "string", "maxLength": 2000, "minLength": 1}
    assert spec["SnippetView"]["additionalProperties"] is False
    assert set(spec["SnippetView"]["required"]) >= {"id", "code", "badges", "headline", "code_sha256"}
    assert "export interface ISnippetView extends ISnippet {" in schemafiles.typescript_text()


def test_the_check_fails_on_a_drifted_file(tmp_path, monkeypatch) -> None:
    from jupyter_codedistiller import schemafiles

    drifted = tmp_path / "records.ts"
    drifted.write_text(schemafiles.typescript_text().replace("  code: string;\n", "", 1), encoding="utf-8")
    spec = tmp_path / "openapi.yaml"
    spec.write_text(schemafiles.OPENAPI.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(schemafiles, "TYPESCRIPT", drifted)
    monkeypatch.setattr(schemafiles, "OPENAPI", spec)
    assert schemafiles.main(["--check"]) == 1
    assert schemafiles.main(["--write"]) == 0 and schemafiles.main(["--check"]) == 0


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


# ---------------------------------------------------------------- source settings

# A source row as the version before typed settings wrote it (every key it knew).
OLD_SOURCE_ROW = {
    "id": "lifelines", "kind": "package", "url": "pkg:lifelines", "location": "/site/lifelines",
    "added": "2026-11-01T10:00:00+00:00", "state": "ok", "last_commit": None, "last_version": "0.30.0",
    "last_refresh": "2026-11-02T10:00:00+00:00", "last_error": None, "license": "MIT",
    "settings": {"repository": "https://github.com/CamDavidsonPilon/lifelines", "package": "lifelines",
                 "version_at_add": "0.30.0", "upstream": False, "extractor": "7",
                 "layers": ["installed: lifelines 0.30.0 at /site/lifelines"], "layers_key": None,
                 "default": True, "validate_per_pass": 40, "order": 2,
                 "llm": {"generated": {"pin": "0.30.0", "outcome": "passed", "when": "2026-11-02"}}},
}


def test_old_source_json_loads_into_typed_settings() -> None:
    from jupyter_codedistiller.model import RegisteredSource, SourceSettings

    src = RegisteredSource.from_dict(json.loads(json.dumps(OLD_SOURCE_ROW)))
    assert isinstance(src.settings, SourceSettings)
    assert src.settings.upstream is False and src.settings.validate_per_pass == 40
    assert src.settings.order == 2 and src.settings.default is True
    assert src.settings.llm["generated"]["outcome"] == "passed"
    assert src.settings.ref is None and src.settings.unknown == {}
    assert src.stored() == {**OLD_SOURCE_ROW, "settings": {
        **OLD_SOURCE_ROW["settings"], "ref": None, "head_at_add": None, "last_error_when": None}}
    unlimited = {**OLD_SOURCE_ROW, "settings": {**OLD_SOURCE_ROW["settings"], "validate_per_pass": 0}}
    assert RegisteredSource.from_dict(unlimited).settings.validate_per_pass == 0  # written as "no limit"
    bare = RegisteredSource.from_dict({"id": "x", "kind": "git", "url": "https://example.org/x.git"})
    assert bare.settings == SourceSettings() and bare.settings.upstream is True


def test_unknown_settings_of_a_newer_version_survive_a_round_trip_but_are_not_shown(library) -> None:
    from jupyter_codedistiller.model import RegisteredSource
    from jupyter_codedistiller.schema import record_schema

    row = {**OLD_SOURCE_ROW, "settings": {**OLD_SOURCE_ROW["settings"], "mirror": {"url": "x"}, "speed": 3}}
    library.add_source(RegisteredSource.from_dict(row))
    src = library.source("lifelines")
    assert src.settings.unknown == {"mirror": {"url": "x"}, "speed": 3}
    src.settings.order = 5
    library.save_source(src)
    again = library.source("lifelines")
    assert again.settings.unknown == {"mirror": {"url": "x"}, "speed": 3} and again.settings.order == 5
    shown = again.to_dict()["settings"]
    assert "mirror" not in shown and "speed" not in shown
    assert set(shown) == set(record_schema(type(again.settings))["properties"])
    assert "unknown" not in shown


@pytest.mark.parametrize(("settings", "message"), [
    ({"validate_per_pass": "ten"}, "source lifelines settings.validate_per_pass must be a whole number or null"),
    ({"validate_per_pass": -1}, "source lifelines settings.validate_per_pass must be a whole number of at least 0"),
    ({"upstream": "no"}, "source lifelines settings.upstream must be true or false"),
    ({"layers": "installed"}, "source lifelines settings.layers must be a list of strings"),
    ({"ref": "--upload-pack=touch /tmp/x"}, "source lifelines settings.ref has characters it may not hold"),
    ("not an object", "source lifelines settings must be a JSON object"),
])
def test_a_bad_settings_value_is_refused_in_one_line(settings, message) -> None:
    from jupyter_codedistiller.model import RegisteredSource

    with pytest.raises(RecordError) as caught:
        RegisteredSource.from_dict({**OLD_SOURCE_ROW, "settings": settings})
    assert str(caught.value) == message


def test_the_core_imports_no_jupyter_runtime() -> None:
    """docs/architecture.md: the core loads no kernel, server, IPython or widgets; nbformat
    (a file-format library) only inside the functions that read notebooks."""
    import subprocess
    import sys

    core = ["model", "schema", "library", "textview", "provenance", "audit", "daemon", "settings",
            "distill.refresh", "distill.generate", "distill.tree", "distill.sources", "distill.extract",
            "distill.cluster", "distill.sandbox"]
    code = ("import sys\n" + "".join(f"import jupyter_codedistiller.{m}\n" for m in core)
            + "print(sorted(m for m in ('IPython', 'ipykernel', 'jupyter_server', 'jupyter_client', "
              "'tornado', 'traitlets', 'ipywidgets', 'nbformat') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_validation_mode_is_warm_cold_or_absent() -> None:
    data = json.loads(make_snippet("km").to_json())
    for mode in ("warm", "cold", None):
        data["validation"]["mode"] = mode
        assert Snippet.from_json(json.dumps(data)).validation.mode == mode
    data["validation"]["mode"] = "lukewarm"
    with pytest.raises(RecordError, match="validation.mode must be one of warm, cold"):
        Snippet.from_json(json.dumps(data))


def test_item_rules_check_every_item_of_a_list_and_reach_the_schema() -> None:
    from dataclasses import dataclass, field

    from jupyter_codedistiller.schema import check, record_schema, rule

    @dataclass
    class Body:
        ids: list[str] = field(default_factory=list, metadata=rule(
            max_length=3, items=rule(pattern="[a-z]+", max_length=5)))

    assert check(Body, {"ids": ["ab", "cd"]}) == {"ids": ["ab", "cd"]}
    with pytest.raises(RecordError, match=r"^ids\[1\] has characters it may not hold$"):
        check(Body, {"ids": ["ab", "../x"]})
    with pytest.raises(RecordError, match=r"^ids\[0\] is longer than 5 characters$"):
        check(Body, {"ids": ["abcdefg"]})
    with pytest.raises(RecordError, match="holds more than 3 items"):
        check(Body, {"ids": ["a", "b", "c", "d"]})
    assert record_schema(Body)["properties"]["ids"] == {
        "type": "array", "items": {"type": "string", "maxLength": 5, "pattern": "^(?:[a-z]+)$"}, "maxItems": 3}
