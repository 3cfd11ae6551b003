"""GET figures/{sha256}: the figures validation runs drew, through a real jupyter_server."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from jupyter_codedistiller.figures import check_png, hold
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Output, Validation

from ..conftest import make_snippet
from .test_server import check_spec, identity, jp_server_config, raw  # noqa: F401 (fixtures)


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw_rows = b"".join(b"\0" + b"\x20\x80\x40" * 4 for _ in range(3))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b""))


def _with_figure(home: Path) -> tuple[str, str, bytes]:
    data, width, height = check_png(_png())
    import hashlib
    digest = hashlib.sha256(data).hexdigest()
    with Library.open(home) as lib:
        s = lib.put(make_snippet("km"))
        v = Validation(status="passed", stdout_tail="<script>alert(1)</script>\n", outputs=[
            Output(kind="figure", label="Figure 1", sha256=digest, size=len(data), width=width,
                   height=height),
            Output(kind="text", label="Result", text="<b>not html</b>")])
        lib.set_validation(s.id, hold(v, {digest: data}), s.revision)
    return s.id, digest, data


async def test_a_figure_is_served_as_png_cacheable_by_its_digest(raw, home):  # noqa: F811
    sid, digest, data = _with_figure(home)
    detail = await raw(f"snippets/{sid}")
    body = json.loads(detail.body)
    check_spec(body, "/snippets/{snippet_id}", "get", 200)
    assert [o["sha256"] for o in body["validation"]["outputs"] if o["kind"] == "figure"] == [digest]
    r = await raw(f"figures/{digest}")
    assert r.code == 200 and r.body == data
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in r.headers["Cache-Control"] and "private" in r.headers["Cache-Control"]
    assert r.headers["ETag"] == f'"{digest}"'
    again = await raw(f"figures/{digest}.png", headers={"If-None-Match": f'"{digest}"'})
    assert again.code == 304 and not again.body


async def test_figures_need_authentication_and_a_digest(raw, home):  # noqa: F811
    _, digest, _ = _with_figure(home)
    for token, path, code, words in (
        (False, f"figures/{digest}", 403, ""),
        (True, "figures/..%2F..%2Flibrary.db", 400, "not a figure id"),
        (True, "figures/" + "A" * 64, 400, "not a figure id"),
        (True, "figures/" + "0" * 64, 404, "no figure"),
    ):
        r = await raw(path, token=token)
        assert r.code == code, (path, r.code)
        assert r.headers["Content-Type"].startswith("application/json")
        assert words in json.loads(r.body)["message"]
