"""Attacks on the API through a real jupyter_server process (issue 16, items 6 and 7).

- Item 6: three unauthenticated POSTs declaring 480 MB each took the server from
  its resting size to 2.1 GB, because tornado buffered every body before the
  handler's 64 KiB check. Now the handlers stream their bodies: an
  unauthenticated request is answered 403 before a byte of its body is read,
  an authenticated one declaring more than the limit 413, and both
  connections are closed unread; a chunked body is cut off at the limit. The
  server's peak resident memory (``VmHWM``) is the witness.
- Item 7: the API stored whatever ``by`` a request sent. Now a body naming a
  person is refused and the record names the signed-in Jupyter user.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_codedistiller.library import Library

from ..conftest import make_snippet
from .integrity import dump

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

ROOT = Path(__file__).resolve().parents[2]
PERSON = "Maria Curie"
DECLARED = 480 * 1024 * 1024  # what the attack declared
LIMIT = 64 * 1024
CHUNK = b"x" * (1024 * 1024)


@dataclass
class Server:
    url: str
    port: int
    token: str
    home: Path
    proc: subprocess.Popen
    sid: str

    def kib(self, field: str) -> int:
        """``VmRSS`` / ``VmHWM`` of the server process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def api(self, path: str, body: Any = None, *, token: bool = True) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}codedistiller/api/{path}", data=data,
                                         method="GET" if body is None else "POST")
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("api-trust")
    home, root = base / "home", base / "root"
    root.mkdir()
    with Library.open(home) as lib:
        sid = lib.put(make_snippet("km")).id
    port, token = _free_port(), "hostile-api-token"
    env = dict(os.environ)
    env.update({
        "CODEDISTILLER_HOME": str(home),
        "CODEDISTILLER_USER": "server-owner",
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    })
    log = base / "server.log"
    command = [
        sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        "--ServerApp.identity_provider_class=tests.hostile.identity.NamedIdentityProvider",
        f"--NamedIdentityProvider.person={PERSON}", f"--ServerApp.root_dir={root}",
        f"--CodeDistiller.home={home}", "--CodeDistiller.daemon=False",
        f"--CodeDistiller.max_body_bytes={LIMIT}",
    ]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT),
                                start_new_session=True)
    s = Server(url=f"http://127.0.0.1:{port}/", port=port, token=token, home=home, proc=proc, sid=sid)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("jupyter_server exited:\n" + log.read_text()[-3000:])
            with contextlib.suppress(OSError):
                if s.api("status")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("jupyter_server did not answer in 120 s:\n" + log.read_text()[-3000:])
            time.sleep(0.3)
        yield s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Attempt:
    status_line: str  # what the server answered before any body was sent ("" if nothing)
    answer: bytes
    sent: int  # body bytes the socket accepted before the server closed the connection


def _post_declaring(server: Server, path: str, declared: int, *, token: bool) -> Attempt:
    """POST headers declaring a ``declared``-byte body, wait for the answer, then try to send
    the body in 1 MiB chunks until the server closes the connection (or all of it went)."""
    head = [f"POST /codedistiller/api/{path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
            "Content-Type: application/json", f"Content-Length: {declared}"]
    if token:
        head.append(f"Authorization: token {server.token}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = b""
        readable, _, _ = select.select([sock], [], [], 60)  # generous: the machine is loaded
        if readable:
            answer = sock.recv(65536)
        sent = 0
        sock.settimeout(10)
        try:
            while sent < declared:
                sent += sock.send(CHUNK)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") if answer else ""
    return Attempt(status_line=status, answer=answer, sent=sent)


def test_three_huge_unauthenticated_posts_are_refused_unread(server: Server) -> None:
    before_library = dump(server.home)
    assert server.api("status")[0] == 200  # warm: every module a refusal needs is loaded
    baseline = server.kib("VmHWM")
    attempts = [_post_declaring(server, f"snippets/{server.sid}/flags", DECLARED, token=False)
                for _ in range(3)]
    for a in attempts:
        assert a.status_line.startswith("HTTP/1.1 403"), a.answer[:300]  # answered before the body
        assert json.loads(a.answer.split(b"\r\n\r\n", 1)[1] or b"{}").get("message")
        assert a.sent < 64 * 1024 * 1024, a.sent  # the connection closed: no 480 MB went in
    growth_mib = (server.kib("VmHWM") - baseline) / 1024
    print(f"3 x {DECLARED >> 20} MiB unauthenticated POSTs: body bytes the socket took "
          f"{[a.sent for a in attempts]}, server peak memory +{growth_mib:.1f} MiB")  # for the docs
    assert growth_mib < 32, f"server peak memory grew {growth_mib:.0f} MiB"
    assert server.api("status")[0] == 200  # still serving
    assert dump(server.home) == before_library


def test_an_authenticated_post_declaring_too_much_gets_413_before_its_body(server: Server) -> None:
    baseline = server.kib("VmHWM")
    a = _post_declaring(server, f"snippets/{server.sid}/flags", DECLARED, token=True)
    assert a.status_line.startswith("HTTP/1.1 413"), a.answer[:300]
    assert b"larger than 65536 bytes" in a.answer
    assert a.sent < 64 * 1024 * 1024, a.sent
    assert (server.kib("VmHWM") - baseline) / 1024 < 32


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    before_library = dump(server.home)
    baseline = server.kib("VmHWM")
    head = (f"POST /codedistiller/api/snippets/{server.sid}/flags HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nAuthorization: token {server.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + b'{"kind": "other", "reason": "')
        sock.settimeout(10)
        try:
            while sent < DECLARED:
                sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
    assert sent < 64 * 1024 * 1024, sent
    assert (server.kib("VmHWM") - baseline) / 1024 < 32
    assert server.api("status")[0] == 200
    assert dump(server.home) == before_library


def test_the_reviewer_and_flagger_are_the_jupyter_user_never_a_field(server: Server) -> None:
    sid = server.sid
    before = dump(server.home)
    for path, body in ((f"snippets/{sid}/flags", {"kind": "other", "reason": "r", "by": "Admin"}),
                       (f"snippets/{sid}/reviews", {"status": "approved", "by": "Head of Lab"}),
                       (f"snippets/{sid}/reviews", {"status": "approved", "reviewer": "Admin"}),
                       (f"snippets/{sid}/flags/1/resolve", {"note": "fine", "resolved_by": "Admin"})):
        code, data = server.api(path, body)
        assert code == 400 and "signed-in Jupyter user" in data["message"], (path, code, data)
    assert dump(server.home) == before  # nothing stored under a forged name

    code, flag = server.api(f"snippets/{sid}/flags", {"kind": "incorrect", "reason": "wrong column"})
    assert code == 201 and flag["flag"]["by"] == PERSON
    code, resolved = server.api(f"snippets/{sid}/flags/{flag['flag']['id']}/resolve", {"note": "ok"})
    assert code == 200 and resolved["flag"]["resolved_by"] == PERSON
    code, review = server.api(f"snippets/{sid}/reviews", {"status": "approved", "note": "ran it"})
    assert code == 201 and review["review"]["by"] == PERSON
    with Library.open(server.home) as lib:
        s = lib.get(sid)
    assert [(f.by, f.resolved_by) for f in s.flags] == [(PERSON, PERSON)]
    assert [e.by for e in s.review.history] == [PERSON]
