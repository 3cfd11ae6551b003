"""The REST API against hostile requests, through a real jupyter_server (pytest-jupyter).

What jupyter_server itself does, tested as it is rather than as we would like it:

- a request carrying the token (``Authorization: token ...``) is authenticated
  by the token alone: no XSRF check and no Origin check, because a foreign
  page cannot know the token (jupyter_server even answers it with
  ``Access-Control-Allow-Origin``);
- a request authenticated by the login cookie (a browser) must carry the
  ``_xsrf`` token for anything but GET, and is refused (404) when its
  ``Origin`` is another site; a cookie GET without an Origin is served (JSON
  objects only, so a ``<script src>`` inclusion reveals nothing).

On top of that the extension answers every oversized, malformed or hostile
body and path with a 4xx JSON message, and nothing outside the library home
can be reached. Every refusal leaves the library exactly as it was.
"""

from __future__ import annotations

import json
import subprocess
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import RegisteredSource

from ..conftest import make_snippet
from ..gitrepos import SAMPLE_FILES, make_repo
from .test_server import library_dump

FOREIGN = "http://evil.example"


@pytest.fixture
def jp_server_config(home: Path) -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_codedistiller": True}},
        "CodeDistiller": {"home": str(home), "daemon": False, "max_body_bytes": 64 * 1024},
    })


@pytest.fixture
def sid(home: Path) -> str:
    with Library.open(home) as lib:
        s = lib.put(make_snippet("km"))
        lib.add_source(RegisteredSource(id="fixture", kind="git", url="https://example.org/x.git"))
    return s.id


class Client:
    """Raw requests to the server: token or cookie, any header, never raising on 4xx/5xx."""

    def __init__(self, http: Any, base: str, app: Any) -> None:
        self.http, self.base, self.app = http, base, app
        self.cookies: dict[str, str] = {}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    async def fetch(self, path: str, *, method: str = "GET", body: bytes | str | None = None,
                    token: bool = False, cookie: bool = False, xsrf: bool = False,
                    headers: dict[str, str] | None = None, api: bool = True) -> HTTPResponse:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"token {self.app.identity_provider.token}"
        if cookie and self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if xsrf:
            h["X-XSRFToken"] = self.cookies["_xsrf"]
        url = self.base + ("codedistiller/api/" if api else "") + path
        return await self.http.fetch(url, method=method, body=body, headers=h, raise_error=False,
                                     request_timeout=30, allow_nonstandard_methods=True,
                                     follow_redirects=False)

    def keep_cookies(self, response: HTTPResponse) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value

    async def log_in(self) -> None:
        """Get the login cookie (a token request sets it) and an _xsrf cookie (the login page)."""
        self.keep_cookies(await self.fetch("status", token=True))
        self.keep_cookies(await self.fetch("login", api=False))
        assert any(k.startswith("username-") for k in self.cookies), self.cookies
        assert "_xsrf" in self.cookies, self.cookies


@pytest.fixture
def client(http_server_client: Any, jp_base_url: str, jp_serverapp: Any) -> Client:
    return Client(http_server_client, jp_base_url, jp_serverapp)


def message(response: HTTPResponse) -> str:
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return json.loads(response.body)["message"]


FLAG = json.dumps({"kind": "other", "reason": "cross-site"})


# ---------------------------------------------------------------- who may ask


async def test_no_credentials_no_access(client: Client, sid: str, home: Path) -> None:
    before = library_dump(home)
    for method, path, body in (("GET", "search?q=x", None), ("GET", f"snippets/{sid}", None),
                               ("POST", f"snippets/{sid}/flags", FLAG), ("POST", "refresh", "{}")):
        for headers in ({}, {"Origin": FOREIGN}, {"Authorization": "token wrong"},
                        {"Cookie": "username-127-0-0-1=forged; _xsrf=x", "X-XSRFToken": "x"}):
            r = await client.fetch(path, method=method, body=body, headers=headers)
            assert r.code in (401, 403, 404), (method, path, headers, r.code)  # 404: cross-origin
    assert library_dump(home) == before


async def test_a_token_in_a_header_is_enough_even_cross_origin(client: Client, sid: str) -> None:
    """jupyter_server's rule: the token itself proves the caller; a foreign page cannot have it."""
    r = await client.fetch(f"snippets/{sid}/flags", method="POST", body=FLAG, token=True,
                           headers={"Origin": FOREIGN})
    assert r.code == 201
    assert r.headers.get("Access-Control-Allow-Origin") == FOREIGN


async def test_a_login_cookie_cannot_write_without_the_xsrf_token(client: Client, sid: str,
                                                                   home: Path) -> None:
    await client.log_in()
    before = library_dump(home)
    r = await client.fetch(f"snippets/{sid}/flags", method="POST", body=FLAG, cookie=True)
    assert r.code == 403
    r = await client.fetch(f"snippets/{sid}/flags", method="POST", body=FLAG, cookie=True,
                           headers={"X-XSRFToken": "forged-token"})
    assert r.code == 403
    assert library_dump(home) == before
    # The same request from the page itself (cookie + its _xsrf token) goes through.
    ok = await client.fetch(f"snippets/{sid}/flags", method="POST", body=FLAG, cookie=True, xsrf=True)
    assert ok.code == 201


async def test_a_login_cookie_from_a_foreign_origin_is_refused(client: Client, sid: str,
                                                                home: Path) -> None:
    await client.log_in()
    before = library_dump(home)
    for method, path, body in (("POST", f"snippets/{sid}/flags", FLAG),
                               ("POST", f"snippets/{sid}/reviews", '{"status": "approved"}'),
                               ("GET", "search?q=kaplan", None), ("GET", "status", None)):
        r = await client.fetch(path, method=method, body=body, cookie=True, xsrf=True,
                               headers={"Origin": FOREIGN})
        assert r.code == 404, (method, path, r.code)
        assert "Access-Control-Allow-Origin" not in r.headers
    assert library_dump(home) == before
    same = await client.fetch("search?q=kaplan", cookie=True, headers={"Origin": f"http://{client.host}"})
    assert same.code == 200 and json.loads(same.body)["results"]
    # A GET without Origin is served to the cookie (as by every Jupyter API): a JSON object,
    # which a <script src> on another site cannot read.
    plain = await client.fetch("search?q=kaplan", cookie=True)
    assert plain.code == 200 and plain.body.lstrip().startswith(b"{")


# ---------------------------------------------------------------- what may be sent


BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("one byte over the limit", b'{"kind": "other", "reason": "' + b"x" * (64 * 1024) + b'"}', 413),
    ("two megabytes", b'{"reason": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413),
    ("deeply nested arrays", b"[" * 50_000, 400),
    ("deeply nested objects", b'{"a":' * 10_000, 400),
    ("not UTF-8", b'{"kind": "other", "reason": "caf\xe9"}', 400),
    ("a lone surrogate", b'{"kind": "other", "reason": "\\ud800"}', 400),
    ("NaN where a number goes", b'{"status": "approved", "revision": NaN}', 400),
    ("a 5000-digit number", b'{"status": "approved", "revision": ' + b"9" * 5000 + b"}", 400),
    ("a huge revision", b'{"status": "approved", "revision": 99999999999999999999999}', 400),
    ("true as a revision", b'{"status": "approved", "revision": true}', 400),
    ("null", b"null", 400),
    ("a string", b'"flag it"', 400),
    ("a number", b"42", 400),
    ("trailing garbage", b'{"kind": "other", "reason": "x"} {"x": 1}', 400),
    ("a NUL byte", b'{"kind": "other", "reason": "x\x00y"}', 400),
    ("a prototype key", b'{"kind": "other", "reason": "x", "__proto__": {"admin": true}}', 400),
    ("a 10,000-character reason", json.dumps({"kind": "other", "reason": "x" * 10_000}).encode(), 400),
]


@pytest.mark.parametrize(("what", "body", "code"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_oversized_and_malformed_bodies_get_a_4xx_and_change_nothing(
        client: Client, sid: str, home: Path, what: str, body: bytes, code: int) -> None:
    before = library_dump(home)
    for path in (f"snippets/{sid}/flags", f"snippets/{sid}/reviews", f"snippets/{sid}/flags/1/resolve",
                 "sources", "refresh"):
        r = await client.fetch(path, method="POST", body=body, token=True,
                               headers={"Content-Type": "application/json"})
        expected = code if code == 413 or path.endswith(("flags", "reviews")) else None
        assert 400 <= r.code < 500, (path, r.code, r.body[:200])
        if expected:
            assert r.code == expected, (path, r.code, r.body[:200])
        assert message(r)
    assert library_dump(home) == before


ODD_SEARCHES = ['"', "NEAR(a b)", "*", "a AND OR NOT", "title:x", "^x", "🧬", "%00", "%25", "_",
                "' OR 1=1 --", "{}[]()", "%E2%80%AE", "x" * 500, "%ED%A0%80", "%FF"]


@pytest.mark.parametrize("q", ODD_SEARCHES, ids=lambda q: repr(q)[:30])
async def test_odd_searches_are_answered_or_refused_in_json(client: Client, sid: str, home: Path,
                                                            q: str) -> None:
    before = library_dump(home)
    for param in ("q", "package", "tag", "source", "license"):
        r = await client.fetch(f"search?{param}={q.replace(' ', '%20')}", token=True)
        assert r.code in (200, 400), (param, q, r.code, r.body[:200])
        data = json.loads(r.body)
        assert "results" in data if r.code == 200 else data["message"]
    assert library_dump(home) == before


# ---------------------------------------------------------------- what may be reached


TRAVERSALS = ["..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "..%5C..%5Cwindows", "cd-x%00.json", "%00", "~root", "%2Fetc%2Fpasswd", "cd-%0Ax",
              "a" * 200, "cd-0123456789abcdef%20OR%201=1", "*", "cd-%25"]


@pytest.mark.parametrize("raw", TRAVERSALS, ids=lambda r: r[:30])
async def test_snippet_paths_outside_the_library_are_refused(client: Client, sid: str, home: Path,
                                                             raw: str) -> None:
    before = library_dump(home)
    for method, path, body in (("GET", f"snippets/{raw}", None),
                               ("POST", f"snippets/{raw}/flags", FLAG),
                               ("POST", f"snippets/{raw}/reviews", '{"status": "approved"}'),
                               ("POST", f"snippets/{sid}/flags/{raw}/resolve", "{}")):
        r = await client.fetch(path, method=method, body=body, token=True)
        assert r.code in (400, 404), (method, path, r.code)
        assert b"root:" not in r.body
    assert library_dump(home) == before


async def test_the_api_prefix_cannot_be_climbed_out_of(client: Client, sid: str) -> None:
    for path in ("../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd",
                 "search/../../../../etc/passwd", "snippets/%2e%2e/%2e%2e/%2e%2e/etc/passwd"):
        r = await client.fetch(path, token=True)
        assert r.code in (400, 403, 404), (path, r.code)
        assert b"root:x:0:0" not in r.body


@pytest.fixture
def outside_repo(tmp_path: Path) -> Path:
    """A real git repository outside the Jupyter root and the library home."""
    path = tmp_path / "outside" / "private-repo"
    make_repo(path, SAMPLE_FILES)
    return path


async def test_sources_outside_the_root_are_refused_however_they_are_spelled(
        client: Client, sid: str, home: Path, jp_root_dir: Path, outside_repo: Path,
        tmp_path: Path) -> None:
    (jp_root_dir / "innocent-link").symlink_to(outside_repo)
    relative = Path(*[".."] * len(jp_root_dir.parts)) / outside_repo.relative_to("/")
    target = tmp_path / "pwned"
    before = library_dump(home)
    for source in [str(outside_repo), f"file://{outside_repo}", "innocent-link",
                   f"file://{jp_root_dir}/innocent-link", str(relative),
                   f"{jp_root_dir}/../outside/private-repo", f"file://{jp_root_dir}/%2e%2e/x",
                   "~/", "~root", f"ssh://-oProxyCommand=touch%20{target}/repo",
                   f"-oProxyCommand=touch {target}:repo", f"ext::sh -c touch% {target}",
                   "fd::17", "file:///proc/self/cwd", "\x00/etc", "pkg:../..", "pkg:x y"]:
        r = await client.fetch("sources", method="POST", body=json.dumps({"source": source}), token=True)
        assert r.code == 400, (source, r.code, r.body[:300])
        assert message(r)
        for name in ("../evil", "UPPER", "a" * 65, "x/y", ".hidden"):
            named = await client.fetch("sources", method="POST", token=True,
                                       body=json.dumps({"source": "pkg:nbformat", "name": name}))
            assert named.code == 400, (name, named.code)
    assert library_dump(home) == before
    assert not target.exists()
    assert not (home / "sources" / "innocent-link").exists()
    for sources in (["../../etc"], ["fixture/../../x"], ["-rf"], ["a" * 100]):
        r = await client.fetch("refresh", method="POST", body=json.dumps({"sources": sources}), token=True)
        assert r.code == 400, (sources, r.code)


async def test_answers_hold_no_path_outside_the_library_home(client: Client, sid: str,
                                                             home: Path) -> None:
    """What the API tells about files: the library's own path, nothing of the machine."""
    status = json.loads((await client.fetch("status", token=True)).body)
    assert Path(status["path"]).resolve().parent == home.resolve()
    shown = json.dumps(status) + (await client.fetch(f"snippets/{sid}", token=True)).body.decode()
    for secret_place in ("/etc/passwd", "/root/.ssh", str(Path.home() / ".ssh")):
        assert secret_place not in shown


def test_git_refuses_option_shaped_hosts_on_its_own() -> None:
    """The last line of defence the API relies on for ssh URLs that pass its checks."""
    done = subprocess.run(["git", "ls-remote", "ssh://-oProxyCommand=true/repo"], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"})
    assert done.returncode != 0 and "strange hostname" in done.stderr
