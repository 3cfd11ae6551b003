"""Hostile repositories, built for real with GitPython: code that attacks, files that break readers.

``HostileSetup`` holds what the attacks aim at (a file outside every working
directory, a fake ``~/.ssh/id_rsa``, a secret in the environment, a listener
on 127.0.0.1). ``hostile_files`` / ``hostile_links`` are the repository's
content; ``make_hostile_repo`` commits them. ``SCRIPT_CASES`` says which
example script attacks what, ``PROBLEM_CASES`` which file must come back as a
one-line problem. Used by ``tests/hostile`` and ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import git

from ..gitrepos import AUTHOR, MIT_LICENSE, notebook, write_files

SECRET_NAME = "FAKE_SECRET"
HUGE_MB = 50


@dataclass
class HostileSetup:
    """What the hostile examples aim at; everything lives in folders the caller removes."""

    outside: Path  # a folder outside /tmp and outside every home: the root file system
    fake_home: Path  # HOME of the refreshing process, with .ssh/id_rsa
    tmp_target: Path  # a file path under the test's temporary folder
    library_home: Path
    secret: str = field(default_factory=lambda: "fake-secret-" + secrets.token_hex(12))
    key_text: str = field(default_factory=lambda: "FAKE-PRIVATE-KEY-" + secrets.token_hex(16))
    marker: str = field(default_factory=lambda: f"{7000 + uuid.uuid4().int % 1000}."
                                                 f"{uuid.uuid4().int % 10**6:06d}")
    tcp: socket.socket | None = None
    udp: socket.socket | None = None
    print_mb: int = 1024

    @property
    def tcp_port(self) -> int:
        assert self.tcp is not None
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        assert self.udp is not None
        return self.udp.getsockname()[1]

    @property
    def write_targets(self) -> list[str]:
        """Where write_outside.py tries to write; none of these may exist afterwards."""
        return [
            str(self.outside / "written-by-example.txt"),
            str(self.fake_home / "written-by-example.txt"),
            str(self.fake_home / ".ssh" / "authorized_keys"),
            str(self.tmp_target),
            str(self.library_home / "written-by-example.txt"),
            str(self.library_home / "sources" / "hostile" / "planted.py"),
            "../../written-by-example.txt",
            "/written-by-example.txt",
        ]

    def key_path(self) -> Path:
        return self.fake_home / ".ssh" / "id_rsa"

    def accepted(self) -> dict[str, int]:
        """Connections that reached the listeners (must stay empty); drains them."""
        got = {"tcp": 0, "udp": 0}
        assert self.tcp is not None and self.udp is not None
        while True:
            try:
                conn, _ = self.tcp.accept()
                conn.close()
                got["tcp"] += 1
            except BlockingIOError:
                break
        while True:
            try:
                self.udp.recvfrom(4096)
                got["udp"] += 1
            except BlockingIOError:
                break
        return got

    def close(self) -> None:
        for s in (self.tcp, self.udp):
            if s is not None:
                s.close()
        shutil.rmtree(self.outside, ignore_errors=True)
        shutil.rmtree(self.fake_home, ignore_errors=True)


def outside_base() -> Path:
    """A folder outside /tmp and every home, where a test may make (and remove) a folder."""
    for base in ("/srv", "/opt", "/var/lib"):
        if os.path.isdir(base) and os.access(base, os.W_OK):
            return Path(base)
    return Path(tempfile.gettempdir())


def hostile_setup(tmp: Path, library_home: Path) -> HostileSetup:
    """Make the targets: folders outside, a fake home with a key, two listeners on 127.0.0.1."""
    base = outside_base()
    setup = HostileSetup(
        outside=Path(tempfile.mkdtemp(prefix="codedistiller-hostile-", dir=base)),
        fake_home=Path(tempfile.mkdtemp(prefix="codedistiller-fakehome-", dir=base)),
        tmp_target=tmp / "written-by-example.txt",
        library_home=library_home,
    )
    ssh = setup.fake_home / ".ssh"
    ssh.mkdir()
    setup.key_path().write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{setup.key_text}\n"
                                "-----END OPENSSH PRIVATE KEY-----\n")
    # Open to everyone on purpose (a careless user): only the sandbox's hiding of homes and its
    # read-only root keep the examples away, not file permissions.
    for p in (setup.outside, setup.fake_home):
        p.chmod(0o777)
    ssh.chmod(0o755)
    setup.key_path().chmod(0o644)
    setup.tcp = socket.socket()
    setup.tcp.bind(("127.0.0.1", 0))
    setup.tcp.listen(16)
    setup.tcp.setblocking(False)
    setup.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    setup.udp.bind(("127.0.0.1", 0))
    setup.udp.setblocking(False)
    return setup


# ---------------------------------------------------------------- the attacks

INFINITE_LOOP = '''"""Spin forever: a loop that never ends."""
count = 0
while True:
    count += 1
'''

FORK_BOMB = '''"""Fork until the machine gives up (bounded here: at most 2**10 processes)."""
import os
import time

origin = os.getpid()
for _ in range(10):
    try:
        os.fork()
    except OSError:
        pass
try:
    with open("forked.txt", "a") as f:
        f.write(f"{os.getpid()}\\n")
except OSError:
    pass
if os.getpid() == origin:
    time.sleep(0.5)
    with open("forked.txt") as f:
        print("processes", len(f.read().split()), flush=True)
os.execvp("sleep", ["sleep", "@MARKER@"])
'''

MEMORY_HOG = '''"""Keep every block of memory it can get."""
hoard = []
while True:
    hoard.append(bytearray(64 * 1024 * 1024))
'''

WRITE_OUTSIDE = '''"""Write where an example has no business writing."""
targets = @TARGETS@
for path in targets:
    try:
        with open(path, "a") as f:
            f.write("written by a hostile example\\n")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
'''

READ_SECRETS = '''"""Read what belongs to the user: an ssh key, the environment, other processes' environments."""
import glob
import json
import os

seen = {}
try:
    with open(@KEY_PATH@) as f:
        seen["fake_key"] = f.read()
except OSError as exc:
    seen["fake_key"] = type(exc).__name__
for path in ["/root/.ssh/id_rsa", "/root/.ssh/id_ed25519", "/etc/shadow"]:
    seen[path] = "readable" if os.access(path, os.R_OK) else "refused"
seen["home_listing"] = sorted(os.listdir(os.path.dirname(@KEY_PATH@))) if os.path.isdir(
    os.path.dirname(@KEY_PATH@)) else "absent"
seen["environ"] = dict(os.environ)
seen["proc_environ_with_secret"] = []
for env_file in glob.glob("/proc/[0-9]*/environ"):
    try:
        with open(env_file, "rb") as f:
            if b"@SECRET_NAME@=" in f.read():
                seen["proc_environ_with_secret"].append(env_file)
    except OSError:
        pass
print(json.dumps(seen, sort_keys=True))
'''

NETWORK = '''"""Phone home: open a TCP connection and send a UDP datagram to listeners on this machine."""
import socket

s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", @TCP_PORT@))
    s.sendall(b"exfiltrated")
    print("CONNECTED tcp")
except OSError as exc:
    print("blocked tcp", type(exc).__name__, exc)
finally:
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"exfiltrated", ("127.0.0.1", @UDP_PORT@))
    print("sent udp")
except OSError as exc:
    print("blocked udp", type(exc).__name__, exc)
'''

PRINT_GIGABYTES = '''"""Print @MB@ MB to standard output, then say it ended."""
import sys

chunk = "x" * (1 << 20)
for _ in range(@MB@):
    sys.stdout.write(chunk)
sys.stdout.write("\\nEND-OF-OUTPUT\\n")
'''

TERMINAL_ESCAPES = (
    '"""Innocent title\x1b]0;owned\x07\x1b[2J\u202e"""\n'
    'print("\x1b]52;c;cGF5bG9hZA==\x07 writes the clipboard, \x1b[2J clears the screen")\n'
)

GOOD = '''"""Median survival of a toy cohort."""
import statistics

print("median", statistics.median([5, 1, 3]))
'''

# example script -> what it attacks (the tests check each one)
SCRIPT_CASES = {
    "examples/infinite_loop.py": "infinite loop",
    "examples/fork_bomb.py": "fork bomb",
    "examples/memory_hog.py": "memory hog",
    "examples/write_outside.py": "writes outside its working directory",
    "examples/read_secrets.py": "reads ~/.ssh and the environment",
    "examples/network.py": "opens network connections",
    "examples/print_gigabytes.py": "prints gigabytes",
    "examples/good_example.py": "an ordinary example (the refresh goes on)",
    "examples/terminal_escapes.py": "terminal escapes in its title, code and output",
}

# Odd names that are legal in git: stored under their own name, nothing else happens.
ODD_NAMES = [
    "examples/%2e%2e%2f%2e%2e%2fetc%2fpasswd.py",
    "examples/-rf.py",
    "examples/line\nbreak.py",
    "examples/$(touch pwned-by-name).py",
    "examples/ünïcødé name.py",
]

# Names starting with a dot are hidden files, never read, whatever follows the dot.
HIDDEN_NAMES = ["examples/..%2f..%2fetc%2fpasswd.py", "examples/.../escape.py"]

# file -> the words its one-line problem must hold
PROBLEM_CASES = {
    "examples/huge_table.py": "MB limit, skipped",
    "examples/binary_blob.py": "binary file, skipped",
    "examples/latin1_notes.py": "not UTF-8 text, skipped",
    "notebooks/broken.ipynb": "not a valid notebook",
    # A name that would forge a second, reassuring problem line if printed raw:
    "examples/fake\nhostile: all clear.py": "syntax error",
    # A name carrying a terminal escape (clear screen):
    "examples/\x1b[2Jclear.py": "binary file, skipped",
}


def _fill(template: str, setup: HostileSetup) -> str:
    values = {
        "@MARKER@": setup.marker,
        "@TARGETS@": json.dumps(setup.write_targets, indent=4),
        "@KEY_PATH@": json.dumps(str(setup.key_path())),
        "@SECRET_NAME@": SECRET_NAME,
        "@TCP_PORT@": str(setup.tcp_port),
        "@UDP_PORT@": str(setup.udp_port),
        "@MB@": str(setup.print_mb),
    }
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def hostile_files(setup: HostileSetup) -> dict[str, str | bytes]:
    """The regular files of the hostile repository."""
    files: dict[str, str | bytes] = {
        "examples/infinite_loop.py": INFINITE_LOOP,
        "examples/fork_bomb.py": FORK_BOMB,
        "examples/memory_hog.py": MEMORY_HOG,
        "examples/write_outside.py": WRITE_OUTSIDE,
        "examples/read_secrets.py": READ_SECRETS,
        "examples/network.py": NETWORK,
        "examples/print_gigabytes.py": PRINT_GIGABYTES,
        "examples/good_example.py": GOOD,
        "examples/terminal_escapes.py": TERMINAL_ESCAPES,
        # 50 MB of valid Python: only its size is wrong.
        "examples/huge_table.py": "x = 1\n" * (HUGE_MB * 1024 * 1024 // 6),
        "examples/binary_blob.py": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64,
        "examples/latin1_notes.py": ('# -*- coding: latin-1 -*-\n"""Caf\xe9 au lait."""\n'
                                     "print('caf\xe9')\n").encode("latin-1"),
        "notebooks/broken.ipynb": '{"cells": [ this is not JSON',
        "notebooks/traversal.ipynb": notebook([
            ("markdown", "# Traversal\n\n## Magics that name files outside"),
            ("code", "%run ../../../../../../etc/passwd\n%load /etc/passwd\n"
                     "!cat ~/.ssh/id_rsa\nprint('notebook ran')"),
        ]),
        "docs/guide.rst": (
            "Guide\n=====\n\nIncluded files\n--------------\n\n"
            ".. literalinclude:: ../../../../../../etc/passwd\n\n"
            ".. include:: /etc/passwd\n\n"
            ".. code-block:: python\n\n   print('rst ran')\n"
        ),
        "README.md": (
            "# hostile\n\nSee [passwd](../../../../../../etc/passwd) and "
            f"![key]({setup.key_path()}).\n\n## Use\n\n```python\nprint('readme ran')\n```\n"
        ),
        "LICENSE": MIT_LICENSE,
    }
    files["examples/fake\nhostile: all clear.py"] = "def broken(:\n    pass\n"
    files["examples/\x1b[2Jclear.py"] = b"\x00\x1b[2J" * 100
    for i, name in enumerate(ODD_NAMES):
        files[name] = f'"""Odd file name number {i}."""\nprint("odd name {i}")\n'
    for name in HIDDEN_NAMES:
        files[name] = '"""Hidden."""\nprint("hidden file ran")\n'
    for name, template in list(files.items()):
        if isinstance(template, str) and name in SCRIPT_CASES:
            files[name] = _fill(template, setup)
    return files


def hostile_links(setup: HostileSetup) -> dict[str, str]:
    """Symbolic links committed into the repository: path -> target."""
    return {
        "examples/passwd_link.py": "/etc/passwd",
        "examples/key_link.py": str(setup.key_path()),
        "examples/relative_escape.py": "../../../../../../../../etc/hostname",
        "doc": "/etc",  # a documentation folder that is the system's /etc
        "pyproject.toml": "/dev/zero",  # read by the license and package-name probes
        "setup.cfg": "/dev/urandom",
        "README.rst": str(setup.key_path()),
    }


def make_hostile_repo(path: Path, setup: HostileSetup) -> git.Repo:
    """The hostile repository at ``path``, every file and link in one commit on ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch="main")
    files = hostile_files(setup)
    write_files(path, files)
    links = hostile_links(setup)
    for name, target in links.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path / name)
    repo.index.add([*files, *links])
    repo.index.commit("hostile examples", author=AUTHOR, committer=AUTHOR)
    return repo


def traversal_commit(repo: git.Repo, payload: str) -> str:
    """Commit a tree git itself should never check out: entries named ``..`` and ``.git``.

    ``..`` holds ``pwned.py`` (it would land next to the checkout), ``.git``
    holds a ``hooks/post-checkout`` hook that runs ``payload``. Built with
    ``git mktree`` because no porcelain command makes such a tree. Returns the commit.
    """
    g = repo.git
    blob = g.hash_object("-w", "--stdin", istream=_stdin(b"print('pwned')\n"))
    hook = g.hash_object("-w", "--stdin", istream=_stdin(f"#!/bin/sh\n{payload}\n".encode()))
    inner = g.mktree(istream=_stdin(f"100644 blob {blob}\tpwned.py\n".encode()))
    hooks = g.mktree(istream=_stdin(f"100755 blob {hook}\tpost-checkout\n".encode()))
    dotgit = g.mktree(istream=_stdin(f"040000 tree {hooks}\thooks\n".encode()))
    head_tree = repo.head.commit.tree.hexsha
    listing = g.ls_tree(head_tree)
    entries = listing + f"\n040000 tree {inner}\t..\n040000 tree {dotgit}\t.git\n"
    tree = g.mktree("--missing", istream=_stdin(entries.encode()))
    env = {"GIT_AUTHOR_NAME": AUTHOR.name, "GIT_AUTHOR_EMAIL": AUTHOR.email,
           "GIT_COMMITTER_NAME": AUTHOR.name, "GIT_COMMITTER_EMAIL": AUTHOR.email}
    sha = g.commit_tree(tree, "-p", repo.head.commit.hexsha, "-m", "traversal", env=env)
    g.update_ref("refs/heads/main", sha)
    return sha


def _stdin(data: bytes) -> IO[bytes]:
    """A file holding ``data``, for GitPython's ``istream`` (which wants a real file)."""
    f = tempfile.TemporaryFile()  # noqa: SIM115 - git reads it; closed when collected
    f.write(data)
    f.seek(0)
    return f
