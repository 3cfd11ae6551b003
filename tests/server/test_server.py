"""The REST API of the server extension, through a real jupyter_server (pytest-jupyter).

Every happy-path answer is checked against the OpenAPI spec in the repository;
bad input must answer 4xx with a JSON message and leave the library unchanged.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

from jupyter_codedistiller.badges import badges
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import RegisteredSource
from jupyter_codedistiller.provenance import cell_source, marker_line
from jupyter_codedistiller.server import handlers as server_handlers

from ..conftest import make_snippet

SPEC_PATH = Path(server_handlers.__file__).with_name("openapi.yaml")
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
API = ("codedistiller", "api")
XSS_TITLE = "Survival <img src=x onerror=alert(1)> curves"


# ---------------------------------------------------------------- the spec checker


def _response_spec(path: str, method: str, status: int) -> dict[str, Any]:
    operation = SPEC["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response["content"]["application/json"]["schema"]


def check_spec(data: Any, path: str, method: str, status: int) -> None:
    """Validate an answer against the spec's schema for that path, method and status."""
    schema = {"allOf": [_response_spec(path, method, status)], "components": SPEC["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.path)
    assert not errors, f"{method} {path} {status}: " + "; ".join(
        f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
    )


def test_spec_schemas_are_valid_json_schema() -> None:
    assert SPEC["openapi"].startswith("3.1")
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_spec_and_routes_agree() -> None:
    """Every route has a path in the spec and every spec path has a route, same methods."""
    routes = {}
    for pattern, cls in server_handlers.ROUTES:
        template = "/" + re.sub(r"\(\[\^/\]\+\)", "{}", pattern)
        methods = {m for m in ("get", "post", "put", "delete", "patch") if m in cls.__dict__}
        routes[template] = methods
    spec = {}
    for path, item in SPEC["paths"].items():
        spec[re.sub(r"\{[^}]+\}", "{}", path)] = {m for m in item if m != "parameters"}
    assert routes == spec


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def identity() -> str | None:
    """The name the Jupyter identity provider gives the user; None for a shared token."""
    return None


@pytest.fixture
def jp_server_config(home: Path, identity: str | None) -> Config:
    config = Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_codedistiller": True}},
        "CodeDistiller": {"home": str(home), "daemon": False},
    })
    if identity:
        config.ServerApp.identity_provider_class = NamedIdentityProvider
        config.NamedIdentityProvider.person = identity
    return config


def _named_identity_provider() -> type:
    from jupyter_server.auth.identity import IdentityProvider, User
    from traitlets import Unicode

    class NamedIdentityProvider(IdentityProvider):
        """Token login that knows who the user is, as JupyterHub's does."""

        person = Unicode("").tag(config=True)

        def generate_anonymous_user(self, handler: Any) -> User:
            return User(username=self.person.lower(), name=self.person)

    return NamedIdentityProvider


NamedIdentityProvider = _named_identity_provider()


@pytest.fixture
def fixture_library(home: Path) -> dict[str, str]:
    """A small library built through Library.put; returns snippet ids by name."""
    ids = {}
    with Library.open(home) as lib:
        for name, kwargs in {
            "km": {},
            "xss": {"title": XSS_TITLE, "summary": "<script>alert(2)</script>"},
            "llm": {"title": "Cox model with covariates", "origin": "generated", "model": "m-1",
                    "validation": "skipped"},
            "scanpy": {"title": "Leiden clustering of cells", "package": "scanpy",
                       "validation": "failed", "tags": ["single-cell"]},
        }.items():
            ids[name] = lib.put(make_snippet(name, **kwargs)).id
        lib.add_source(RegisteredSource(id="fixture", kind="git",
                                        url="https://example.org/lab/survival-examples.git"))
    return ids


@pytest.fixture
def raw(http_server_client: Any, jp_base_url: str, jp_serverapp: Any) -> Any:
    """Fetch ``codedistiller/api/<path>`` exactly as given, never raising on 4xx/5xx."""

    def fetch(path: str, *, method: str = "GET", body: bytes | str | None = None,
              token: bool = True, headers: dict[str, str] | None = None) -> Any:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"token {jp_serverapp.identity_provider.token}"
        return http_server_client.fetch(
            jp_base_url + "codedistiller/api/" + path, method=method, body=body,
            headers=headers, raise_error=False, request_timeout=20,
            allow_nonstandard_methods=True,
        )

    return fetch


def answer(response: HTTPResponse) -> Any:
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


def library_dump(home: Path) -> str:
    out = io.StringIO()
    with Library.open(home) as lib:
        lib.export(out)
        out.write(json.dumps([s.to_dict() for s in lib.sources(include_removed=True)]))
    return out.getvalue()


# ---------------------------------------------------------------- happy paths


async def test_search_answers_ranked_results_with_badges(jp_fetch, fixture_library, home):
    r = await jp_fetch(*API, "search", params={"q": "kaplan meier", "limit": "10"})
    data = answer(r)
    check_spec(data, "/search", "get", 200)
    assert data["results"], "the fixture library holds Kaplan-Meier snippets"
    top = data["results"][0]
    assert top["rank"] == 1 and top["score"] > 0
    with Library.open(home) as lib:
        stored = lib.get(top["id"])
    assert top["badges"] == [b.to_dict() for b in badges(stored)]
    assert top["code"] == stored.code
    assert top["link"] == stored.source.link()


async def test_search_says_when_the_library_is_still_being_built(jp_fetch, fixture_library, home):
    from jupyter_codedistiller.model import RegisteredSource

    with Library.open(home) as lib:
        lib.add_source(RegisteredSource(id="lab-repo", kind="git", url="https://example.org/lab/repo.git"))
        expected = lib.building()
    data = answer(await jp_fetch(*API, "search", params={"q": "kaplan meier"}))
    check_spec(data, "/search", "get", 200)
    assert expected and data["building"] == expected and expected["sources_waiting"] >= 1
    assert data["results"], "and shows what is there"


async def test_search_filters_and_pages(jp_fetch, fixture_library, raw):
    r = await jp_fetch(*API, "search", params={"q": "", "validation": "passed"})
    data = answer(r)
    check_spec(data, "/search", "get", 200)
    assert {x["validation"]["status"] for x in data["results"]} == {"passed"}
    assert data["filters"] == {"validation": "passed"}

    r = await jp_fetch(*API, "search", params={"q": "clustering", "package": "scanpy"})
    data = answer(r)
    assert [x["id"] for x in data["results"]] == [fixture_library["scanpy"]]

    # JupyterLab's ServerConnection adds a bare timestamp to GET requests against caching.
    busted = await raw("search?q=clustering&1732520000000")
    assert [x["id"] for x in answer(busted)["results"]] == [fixture_library["scanpy"]]

    first = answer(await jp_fetch(*API, "search", params={"q": "", "limit": "1"}))
    second = answer(await jp_fetch(*API, "search", params={"q": "", "limit": "1", "offset": "1"}))
    check_spec(second, "/search", "get", 200)
    assert first["has_more"] is True
    assert second["results"][0]["rank"] == 2
    assert first["results"][0]["id"] != second["results"][0]["id"]


async def test_snippet_detail_carries_cell_source_and_metadata(jp_fetch, fixture_library, home):
    sid = fixture_library["km"]
    data = answer(await jp_fetch(*API, "snippets", sid))
    check_spec(data, "/snippets/{snippet_id}", "get", 200)
    with Library.open(home) as lib:
        s = lib.get(sid)
    assert data["cell_source"] == cell_source(s)
    assert data["marker"] == marker_line(s)
    assert data["cell_source"].startswith(data["marker"] + "\n")
    meta = data["cell_metadata"]
    assert (meta["id"], meta["revision"]) == (sid, s.revision)
    assert meta["source"]["commit"] == s.source.commit
    assert data["insert_blockers"] == [] and data["policy"] == "open"

    by_prefix = answer(await jp_fetch(*API, "snippets", sid[:9]))
    assert by_prefix["id"] == sid


async def test_failed_snippet_lists_what_blocks_insertion(jp_fetch, fixture_library):
    data = answer(await jp_fetch(*API, "snippets", fixture_library["scanpy"]))
    assert any("validation failed" in b for b in data["insert_blockers"])
    llm = answer(await jp_fetch(*API, "snippets", fixture_library["llm"]))
    assert any("LLM" in w for w in llm["insert_warnings"])


async def test_flag_persists_and_shows_in_badges(jp_fetch, fixture_library, home):
    sid = fixture_library["km"]
    r = await jp_fetch(*API, "snippets", sid, "flags", method="POST",
                       body=json.dumps({"kind": "incorrect", "reason": "wrong column"}))
    assert r.code == 201
    data = answer(r)
    check_spec(data, "/snippets/{snippet_id}/flags", "post", 201)
    assert data["flag"]["by"] == "tester"  # shared token: the library's acting person
    assert {"kind": "flags", "label": "flagged (1)", "level": "bad"} in data["snippet"]["badges"]
    with Library.open(home) as lib:
        stored = lib.get(sid)
    assert [(f.kind, f.reason, f.by) for f in stored.open_flags] == [
        ("incorrect", "wrong column", "tester")
    ]



@pytest.mark.parametrize("identity", ["Maria Curie"])
async def test_acting_person_is_the_jupyter_user(jp_fetch, fixture_library, home, identity):
    sid = fixture_library["km"]
    r = await jp_fetch(*API, "snippets", sid, "reviews", method="POST",
                       body=json.dumps({"status": "approved", "note": "checked"}))
    assert answer(r)["review"]["by"] == "Maria Curie"


async def test_resolve_flag(jp_fetch, fixture_library, home, raw):
    sid = fixture_library["km"]
    flag = answer(await jp_fetch(*API, "snippets", sid, "flags", method="POST",
                                 body=json.dumps({"kind": "unsafe", "reason": "deletes files"})))
    fid = flag["flag"]["id"]
    r = await jp_fetch(*API, "snippets", sid, "flags", str(fid), "resolve", method="POST",
                       body=json.dumps({"note": "only in a temp dir"}))
    data = answer(r)
    check_spec(data, "/snippets/{snippet_id}/flags/{flag_id}/resolve", "post", 200)
    assert data["flag"]["resolved"] is True and data["flag"]["resolved_by"] == "tester"
    with Library.open(home) as lib:
        assert lib.get(sid).open_flags == []

    again = await raw(f"snippets/{sid}/flags/{fid}/resolve", method="POST", body="{}")
    assert again.code == 400 and "already resolved" in answer(again)["message"]
    missing = await raw(f"snippets/{sid}/flags/999/resolve", method="POST", body="{}")
    assert missing.code == 404
    check_spec(answer(missing), "/snippets/{snippet_id}/flags/{flag_id}/resolve", "post", 404)


async def test_review_persists_and_checks_revision(jp_fetch, fixture_library, home, raw):
    sid = fixture_library["llm"]
    r = await jp_fetch(*API, "snippets", sid, "reviews", method="POST",
                       body=json.dumps({"status": "approved", "note": "ran it", "revision": 1}))
    assert r.code == 201
    data = answer(r)
    check_spec(data, "/snippets/{snippet_id}/reviews", "post", 201)
    assert data["snippet"]["review"]["status"] == "approved"
    with Library.open(home) as lib:
        stored = lib.get(sid)
    assert stored.review.status == "approved"
    assert [(e.by, e.note) for e in stored.review.history] == [("tester", "ran it")]

    stale = await raw(f"snippets/{sid}/reviews", method="POST",
                      body=json.dumps({"status": "rejected", "revision": 5}))
    assert stale.code == 400 and "revision" in answer(stale)["message"]


async def test_sources_and_status(jp_fetch, fixture_library, home):
    with Library.open(home) as lib:  # a key a newer version wrote: kept, never answered
        src = lib.source("fixture")
        src.settings.unknown = {"mirror": "https://example.org/m.git"}
        lib.save_source(src)
    data = answer(await jp_fetch(*API, "sources"))
    check_spec(data, "/sources", "get", 200)
    assert [s["id"] for s in data["sources"]] == ["fixture"]
    assert "mirror" not in data["sources"][0]["settings"]
    with Library.open(home) as lib:
        assert lib.source("fixture").settings.unknown == {"mirror": "https://example.org/m.git"}

    status = answer(await jp_fetch(*API, "status"))
    check_spec(status, "/status", "get", 200)
    assert status["snippets"] == 4
    assert status["refresh"] is None
    assert status["policy"] == "open"


async def test_refresh_runs_in_a_child_process(jp_fetch, home, raw, jp_serverapp):
    import os

    with Library.open(home):
        pass
    r = await jp_fetch(*API, "refresh", method="POST", body=json.dumps({"validate": False}))
    assert r.code == 202
    job = answer(r)["job"]
    check_spec(answer(r), "/refresh", "post", 202)
    assert job["pid"] != os.getpid() and job["state"] == "running"

    busy = await raw("refresh", method="POST", body="{}")
    if busy.code == 409:  # the child may already have finished on a fast machine
        assert "already running" in answer(busy)["message"]
        check_spec(answer(busy), "/refresh", "post", 409)
    else:
        assert busy.code == 202

    status = await wait_for_refresh(jp_fetch)
    check_spec(status, "/status", "get", 200)
    assert status["refresh"]["state"] == "finished", status["refresh"]["log_tail"]
    assert (home / "logs" / "refresh.log").is_file()

    unknown = await raw("refresh", method="POST", body=json.dumps({"sources": ["nope"]}))
    assert unknown.code == 404
    bad = await raw("refresh", method="POST", body=json.dumps({"sources": ["nope", "../x"]}))
    assert bad.code == 400 and "sources[1]" in answer(bad)["message"], bad.body
    check_spec(answer(unknown), "/refresh", "post", 404)


async def wait_for_refresh(jp_fetch: Any) -> dict[str, Any]:
    """Poll GET status until the API's refresh job is no longer running."""
    for _ in range(600):
        status = answer(await jp_fetch(*API, "status"))
        if status["refresh"] and status["refresh"]["state"] != "running":
            return status
        await asyncio.sleep(0.1)
    raise AssertionError("the refresh did not finish within a minute")


async def test_add_source_then_refresh_it_makes_its_example_searchable(jp_fetch, jp_root_dir, raw):
    import git

    repo_dir = jp_root_dir / "examples-repo"
    repo = git.Repo.init(repo_dir)
    (repo_dir / "examples").mkdir()
    (repo_dir / "examples" / "volcano_plot.py").write_text(
        '"""Volcano plot of differential expression results."""\n'
        "fold_changes = [1.5, -2.0, 0.3]\n"
        "print(sum(fold_changes))\n",
        encoding="utf-8",
    )
    repo.index.add(["examples/volcano_plot.py"])
    who = git.Actor("t", "t@example.org")
    repo.index.commit("first", author=who, committer=who)

    for bad in ("-x", "a..b", "x y", "r" * 256, 3):
        refused = await raw("sources", method="POST",
                            body=json.dumps({"source": "examples-repo", "name": "mine", "ref": bad}))
        assert refused.code == 400 and "'ref'" in answer(refused)["message"], refused.body
    r = await jp_fetch(*API, "sources", method="POST",
                       body=json.dumps({"source": "examples-repo", "name": "mine",
                                        "ref": repo.active_branch.name}))
    assert r.code == 201
    data = answer(r)
    check_spec(data, "/sources", "post", 201)
    assert data["source"]["id"] == "mine"
    assert data["source"]["settings"]["ref"] == repo.active_branch.name
    listed = answer(await jp_fetch(*API, "sources"))
    assert "mine" in [s["id"] for s in listed["sources"]]

    twice = await raw("sources", method="POST",
                      body=json.dumps({"source": "examples-repo", "name": "mine"}))
    assert twice.code == 400 and answer(twice)["message"]

    r = await jp_fetch(*API, "refresh", method="POST",
                       body=json.dumps({"sources": ["mine"], "validate": False}))
    assert r.code == 202 and answer(r)["job"]["sources"] == ["mine"]
    status = await wait_for_refresh(jp_fetch)
    assert status["refresh"]["state"] == "finished", status["refresh"]["log_tail"]
    found = answer(await jp_fetch(*API, "search", params={"q": "volcano", "source": "mine"}))
    check_spec(found, "/search", "get", 200)
    assert [x["source"]["path"] for x in found["results"]] == ["examples/volcano_plot.py"]


@pytest.mark.parametrize("source", [
    "/etc",
    "../../outside",
    "file:///etc",
    "ext::sh -c touch% /tmp/pwned",
    "--upload-pack=touch /tmp/pwned",
    "ftp://example.org/repo.git",
    "pkg:../../x",
])
async def test_add_source_refuses_what_lies_outside(raw, source, home, jp_root_dir):
    before = library_dump(home)
    r = await raw("sources", method="POST", body=json.dumps({"source": source}))
    assert r.code == 400, r.body
    check_spec(answer(r), "/sources", "post", 400)
    assert library_dump(home) == before


# ---------------------------------------------------------------- refusals


ENDPOINTS = [
    ("GET", "search?q=x", None),
    ("GET", "snippets/cd-0000000000000000", None),
    ("POST", "snippets/cd-0000000000000000/flags", '{"kind": "other", "reason": "r"}'),
    ("POST", "snippets/cd-0000000000000000/flags/1/resolve", "{}"),
    ("POST", "snippets/cd-0000000000000000/reviews", '{"status": "approved"}'),
    ("GET", "sources", None),
    ("POST", "sources", '{"source": "pkg:x"}'),
    ("POST", "refresh", "{}"),
    ("GET", "status", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_unauthenticated_requests_are_refused(raw, method, path, body, fixture_library, home):
    before = library_dump(home)
    r = await raw(path, method=method, body=body, token=False)
    assert r.code in (401, 403)
    r = await raw(path, method=method, body=body, token=False,
                  headers={"Authorization": "token not-the-token"})
    assert r.code in (401, 403)
    assert json.loads(r.body)["message"]
    assert library_dump(home) == before


KM = "cd-km"  # replaced by the real id in the test


BAD_REQUESTS = [
    ("GET", "search?limit=0", None, 400, "limit"),
    ("GET", "search?limit=101", None, 400, "limit"),
    ("GET", "search?limit=ten", None, 400, "limit"),
    ("GET", "search?offset=-1", None, 400, "offset"),
    ("GET", "search?validation=great", None, 400, "validation must be one of"),
    ("GET", "search?review=maybe", None, 400, "review must be one of"),
    ("GET", "search?colour=red", None, 400, "unknown parameter"),
    ("GET", "search?q=a&q=b", None, 400, "more than once"),
    ("GET", "search?1732520000000=x", None, 400, "unknown parameter"),
    ("GET", "search?q=" + "x" * 501, None, 400, "longer than"),
    ("GET", "snippets/cd-doesnotexist00", None, 404, "no snippet"),
    ("GET", "snippets/..%2F..%2Fetc", None, 400, "not a snippet id"),
    ("POST", f"snippets/{KM}/flags", "{not json", 400, "not valid JSON"),
    ("POST", f"snippets/{KM}/flags", "[1, 2]", 400, "JSON object"),
    ("POST", f"snippets/{KM}/flags", '{"kind": "other"}', 400, "'reason' is required"),
    ("POST", f"snippets/{KM}/flags", '{"kind": "bogus", "reason": "r"}', 400, "field 'kind' must be one of"),
    ("POST", f"snippets/{KM}/flags", '{"kind": "other", "reason": 5}', 400, "must be a string"),
    ("POST", f"snippets/{KM}/flags", '{"kind": "other", "reason": "  "}', 400, "blank"),
    ("POST", f"snippets/{KM}/flags", '{"kind": "other", "reason": "r", "x": 1}', 400, "unknown field"),
    ("POST", f"snippets/{KM}/flags", json.dumps({"kind": "other", "reason": "r" * 70_000}), 413,
     "larger than"),
    ("POST", f"snippets/{KM}/flags", json.dumps({"kind": "other", "reason": "r" * 3000}), 400,
     "longer than"),
    ("POST", "snippets/cd-doesnotexist00/flags", '{"kind": "other", "reason": "r"}', 404,
     "no snippet"),
    ("POST", f"snippets/{KM}/flags/abc/resolve", "{}", 400, "flag id"),
    ("POST", f"snippets/{KM}/reviews", '{"status": "maybe"}', 400, "field 'status' must be one of"),
    ("POST", f"snippets/{KM}/reviews", '{"status": "approved", "revision": true}', 400,
     "whole number"),
    ("POST", f"snippets/{KM}/reviews", '{"status": "approved", "by": "bo"}', 400, "not accepted"),
    ("POST", "sources", "{}", 400, "'source' is required"),
    ("POST", "sources", '{"source": "pkg:x", "name": "a b"}', 400, "characters"),
    ("POST", "refresh", '{"sources": "all"}', 400, "list of strings"),
    ("POST", "refresh", '{"sources": ["../x"]}', 400, "sources[0]"),
    ("POST", "refresh", '{"validate": "yes"}', 400, "true or false"),
]


@pytest.mark.parametrize(("method", "path", "body", "code", "words"), BAD_REQUESTS)
async def test_bad_input_answers_4xx_json_and_changes_nothing(
    raw, fixture_library, home, method, path, body, code, words
):
    before = library_dump(home)
    r = await raw(path.replace(KM, fixture_library["km"]), method=method, body=body,
                  headers={"Content-Type": "application/json"})
    assert r.code == code, r.body
    data = answer(r)
    assert words in data["message"]
    check_spec(data, "/search", "get", 400)  # the Error schema
    assert library_dump(home) == before


async def test_jp_fetch_raises_for_missing_snippet(jp_fetch, fixture_library):
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API, "snippets", "cd-ffffffffffffffff")
    assert caught.value.code == 404
    data = json.loads(caught.value.response.body)
    check_spec(data, "/snippets/{snippet_id}", "get", 404)


# ---------------------------------------------------------------- packaging


def test_server_extension_is_enabled_by_the_shipped_config() -> None:
    import jupyter_codedistiller

    root = Path(jupyter_codedistiller.__file__).resolve().parent.parent
    config = json.loads(
        (root / "jupyter-config/jupyter_server_config.d/jupyter_codedistiller.json").read_text()
    )
    assert config["ServerApp"]["jpserver_extensions"] == {"jupyter_codedistiller": True}
    points = jupyter_codedistiller._jupyter_server_extension_points()
    assert points == [{"module": "jupyter_codedistiller.server"}]
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((root / "pyproject.toml").read_text())
    shared = project["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["jupyter-config/jupyter_server_config.d"] == "etc/jupyter/jupyter_server_config.d"
    assert shared["jupyter_codedistiller/labextension"] == (
        "share/jupyter/labextensions/jupyter-codedistiller"
    )


def test_package_import_stays_free_of_server_modules() -> None:
    import subprocess
    import sys

    code = ("import sys, jupyter_codedistiller; "
            "print(any(m.startswith(('tornado', 'jupyter_server')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_team_policy_reaches_the_panel_through_insert_blockers(jp_fetch, fixture_library, home):
    from jupyter_codedistiller.settings import set_setting

    sid = fixture_library["km"]
    set_setting(home, "policy", "reviewed")
    data = answer(await jp_fetch(*API, "snippets", sid))
    check_spec(data, "/snippets/{snippet_id}", "get", 200)
    assert data["policy"] == "reviewed"
    assert any("team policy is 'reviewed'" in b for b in data["insert_blockers"])
    await jp_fetch(*API, "snippets", sid, "reviews", method="POST", body=json.dumps({"status": "approved"}))
    data = answer(await jp_fetch(*API, "snippets", sid))
    assert not any("team policy" in b for b in data["insert_blockers"])


async def test_add_source_reads_sources_as_classify_does(raw, home):
    from .. import source_cases

    before = library_dump(home)
    for spec, words in source_cases.REFUSED:
        r = await raw("sources", method="POST", body=json.dumps({"source": spec}))
        if not spec.strip():  # the body's own check speaks first
            words = "field 'source' must not be blank"
        assert r.code == 400 and words in answer(r)["message"], (spec, r.body)
        check_spec(answer(r), "/sources", "post", 400)
    for spec in source_cases.TRIED:  # git+ssh is a git URL here too: the clone is tried
        r = await raw("sources", method="POST", body=json.dumps({"source": spec}))
        assert r.code == 400 and f"cannot clone {spec}" in answer(r)["message"], (spec, r.body)
    assert library_dump(home) == before
