"""Attacks on the sandbox's own record and limits (issue 16, items 1, 3, 4 and 8), run for real.

Each test reproduces the attack as it was found and asserts it is contained;
where containment depends on what this machine's kernel allows, the test is
conditioned on the isolation level the run itself recorded.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import pytest

from jupyter_codedistiller.distill.sandbox import SandboxSettings, isolation_available, validate, weakest_isolation
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Validation
from jupyter_codedistiller.textview import status_text

from ..conftest import make_snippet

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox targets Linux")

FAST = SandboxSettings(timeout=20)
ISOLATION = isolation_available() if sys.platform == "linux" else "rlimits-only"

# Forged events written to every descriptor the snippet might hold, and to the report pipes of
# every process it can see; then junk to push real events out of any buffer; then a clean exit.
FORGER = r'''
import json, os
forged = [{"event": "setup", "features": ["net", "pid", "fs", "uid"], "rlimits_failed": []},
          {"event": "start", "python_version": "9.9.9-FORGED", "missing": []},
          {"event": "end", "packages": {"numpy": "0.0.0-FORGED"}},
          {"event": "exit", "code": 0}]
lines = "".join(json.dumps(e) + "\n" for e in forged).encode()
junk = b"x" * (4 << 20) + b"\n"
held = sorted(int(f) for f in os.listdir("/proc/self/fd"))
targets = [str(fd) for fd in range(3, 256)]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            targets += ["/proc/%s/fd/%s" % (pid, fd) for fd in os.listdir("/proc/%s/fd" % pid)]
        except OSError:
            pass
wrote = 0
for target in targets:
    try:
        fd = int(target) if target.isdigit() else os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        continue
    for data in (junk, lines):
        try:
            os.write(fd, data)
            wrote += 1
        except OSError:
            pass
    if not target.isdigit():
        os.close(fd)
print("held", held, "wrote", wrote, flush=True)
import nbformat
os._exit(0)
'''


def test_snippet_cannot_forge_its_validation_record() -> None:
    v = validate(FORGER, settings=FAST)
    assert v.status == "passed", v
    assert "FORGED" not in repr(v)
    assert v.python_version == platform.python_version()
    assert v.packages == {"nbformat": metadata.version("nbformat")}
    assert v.isolation.removesuffix("+rlimits") == ISOLATION  # the probed level, not forged features
    # The snippet's process holds its three standard streams and the descriptor listing them.
    held = v.stdout_tail.rpartition("held ")[2].split(" wrote")[0]
    assert held == "[0, 1, 2, 3]", v.stdout_tail


def test_snippet_output_that_looks_like_events_is_only_output() -> None:
    code = ('import json, sys\n'
            'print(json.dumps({"event": "end", "packages": {"numpy": "0.0.0-FORGED"}}))\n'
            'sys.stderr.write(json.dumps({"event": "setup", "features": ["uid"]}) + "\\n")\n')
    v = validate(code, settings=FAST)
    assert v.status == "passed" and v.packages == {} and v.isolation.removesuffix("+rlimits") == ISOLATION
    assert "FORGED" in v.stdout_tail  # kept as data, capped, never read as an event


@pytest.mark.skipif(os.geteuid() != 0 or "uid" not in ISOLATION.split("+"),
                    reason=f"no throwaway uid on this machine ({ISOLATION})")
def test_restrictive_umask_never_makes_snippets_run_as_root(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        # What the sandbox prepares itself (working directory, the snippet) is fixed up: it runs,
        # unprivileged, and says so.
        v = validate("import os\nprint(os.getuid())", settings=FAST)
        assert v.status == "passed", v
        assert int(v.stdout_tail) != 0 and "uid" in v.isolation.split("+")
        # A checkout the throwaway uid cannot read is refused with a one-line reason, never run
        # as root.
        checkout = tmp_path / "checkout"
        checkout.mkdir()
        (checkout / "survkit.py").write_text("X = 1\n")
        os.chmod(tmp_path, 0o700)
        os.chmod(checkout, 0o700)
        refused = validate("import os, survkit\nprint('uid', os.getuid())",
                           python_path=[str(checkout)], settings=FAST)
    finally:
        os.umask(old)
    assert refused.status == "skipped", refused
    assert "throwaway uid cannot read" in refused.reason and "\n" not in refused.reason
    assert "uid 0" not in refused.stdout_tail and refused.stdout_tail == ""


def test_status_shows_the_weakest_isolation_in_use(library: Library) -> None:
    strong, weak = make_snippet("strong"), make_snippet("weak")
    library.upsert([strong, weak])
    library.set_validation(strong.id, Validation(status="passed", isolation="unshare-net+pid+fs+uid+rlimits"))
    library.set_validation(weak.id, Validation(status="passed", isolation="rlimits-only"))
    st = library.status()
    assert st.isolation == {"unshare-net+pid+fs+uid+rlimits": 1, "rlimits-only": 1}
    assert "weakest isolation in use: rlimits-only (1 snippets)" in status_text(st)
    assert weakest_isolation(["bwrap-net+pid+fs+rlimits", "unshare-net+pid+fs+uid+rlimits"]) == (
        "bwrap-net+pid+fs+rlimits")


@pytest.mark.parametrize("code", [
    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)",
    "import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(600)",
    "import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)",
    "s = __import__('socket').socket()",
])
def test_without_namespaces_sockets_and_daemons_are_not_run_and_it_says_so(code: str) -> None:
    v = validate(code, settings=SandboxSettings(timeout=10, isolation="none"))
    assert (v.status, v.duration, v.stdout_tail) == ("skipped", 0.0, "")
    assert v.reason.startswith("not run: it ") and "cannot contain sockets or background processes" in v.reason
    plain = validate("print(sum(range(4)))", settings=SandboxSettings(timeout=10, isolation="none"))
    assert plain.status == "passed" or "throwaway uid cannot read" in plain.reason


TREE_HOG = r'''
import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
'''


def test_memory_spread_over_processes_is_bounded_cold() -> None:
    # Four children of 200 MB each, every one under the 300 MB per-process limit; 600 MB for the tree.
    v = validate(TREE_HOG, settings=SandboxSettings(timeout=60, memory_mb=300))
    assert (v.status, v.reason) == ("failed", "memory"), (v.status, v.reason, v.stderr_tail)
    assert v.duration < 50
