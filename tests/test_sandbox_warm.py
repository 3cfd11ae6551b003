"""The warm pool, run for real: one pre-started interpreter, a fresh child per snippet.

Every snippet here is followed by a probe snippet in the same warm interpreter,
which asserts it sees a pristine state. Skipped where the machine gives no
namespaces and throwaway uids (the pool is then never used: everything is cold).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_codedistiller.distill import sandbox
from jupyter_codedistiller.distill.sandbox import SandboxSettings, Task, validate_many, warm_available
from jupyter_codedistiller.distill.sandbox.warm import PoolDied, WarmPool

from .hostile.test_sandbox_forgery import TREE_HOG

pytestmark = pytest.mark.skipif(sys.platform != "linux" or warm_available() is not None,
                                reason=f"no warm pool here: {warm_available() if sys.platform == 'linux' else ''}")

FAST = SandboxSettings(timeout=20)

PROBE = r'''
import json, os, signal, sys, tempfile
import numpy, json as j2
state = {
    "modules": sorted(m for m in ("evil_module", "email.evil") if m in sys.modules),
    "env": sorted(k for k in os.environ if k.startswith("EVIL")),
    "numpy_pi": numpy.pi,
    "tmp": sorted(os.listdir("/tmp")) + sorted(os.listdir(tempfile.gettempdir())),
    "shm": sorted(os.listdir("/dev/shm")),
    "handlers": [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
                 if signal.getsignal(s) not in (signal.SIG_DFL, signal.default_int_handler)],
    "cwd_files": sorted(os.listdir(".")),
    "uid": os.getuid(),
    "others": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()
                     and open("/proc/%s/status" % p).read().split("Uid:")[1].split()[0] != "0"
                     and int(p) != os.getpid()),
}
print("STATE" + json.dumps(state))
'''

HOSTILE = {
    "sys.modules": "import sys, types\nsys.modules['evil_module'] = types.ModuleType('evil_module')\n"
                   "import email\nsys.modules['email.evil'] = email",
    "os.environ": "import os\nos.environ['EVIL'] = '1'\nos.putenv('EVIL_PUT', '1')",
    "package global": "import numpy\nnumpy.pi = 3.0",
    "/tmp": "import os, tempfile\nopen('/tmp/evil', 'w').write('x')\nopen('/dev/shm/evil', 'w').write('x')\n"
            "open(os.path.join(tempfile.gettempdir(), 'evil'), 'w').write('x')\nopen('left', 'w').write('x')",
    "signal handlers": "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):\n"
                       "    signal.signal(s, lambda *a: None)",
    "child process": "import subprocess, os\nsubprocess.Popen(['sleep', '600'])\n"
                     "subprocess.Popen(['sleep', '601'], start_new_session=True)\n"
                     "if os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(600)\n",
}


def state_of(v: sandbox.Validation) -> dict:
    assert v.status == "passed", (v.reason, v.stderr_tail)
    return json.loads(v.stdout_tail.rpartition("STATE")[2].splitlines()[0])


def test_nothing_a_snippet_does_is_visible_to_the_next() -> None:
    tasks = [Task(PROBE)]
    for code in HOSTILE.values():
        tasks += [Task(code), Task(PROBE)]
    results = list(validate_many(tasks, settings=FAST))
    assert [v.mode for _, v in results] == ["warm"] * len(tasks)
    pristine = state_of(results[0][1])
    assert pristine["modules"] == pristine["env"] == pristine["handlers"] == pristine["others"] == []
    assert pristine["numpy_pi"] > 3.14 and pristine["cwd_files"] == [".codedistiller-outputs", "snippet.py", "tmp"]
    uids = {pristine["uid"]}
    for (what, _), i in zip(HOSTILE.items(), range(1, len(tasks), 2), strict=True):
        attack, probe = results[i][1], results[i + 1][1]
        assert attack.status == "passed", (what, attack.reason, attack.stderr_tail)
        seen = state_of(probe)
        uids.add(seen.pop("uid"))
        assert seen == {k: v for k, v in pristine.items() if k != "uid"}, what
    assert len(uids) == len(HOSTILE) + 1 and 0 not in uids  # a throwaway uid each


def test_a_snippet_cannot_signal_or_ptrace_the_warm_parent() -> None:
    code = r'''
import ctypes, os, signal
parent = os.getppid()
results = {}
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
    for target in (parent, 1):
        try:
            os.kill(target, sig)
            results["%d->%d" % (sig, target)] = "sent"
        except OSError as exc:
            results["%d->%d" % (sig, target)] = exc.errno
libc = ctypes.CDLL(None, use_errno=True)
results["ptrace"] = libc.ptrace(16, parent, 0, 0)  # PTRACE_ATTACH
try:
    open("/proc/%d/mem" % parent, "rb").read(1)
    results["mem"] = "read"
except OSError as exc:
    results["mem"] = exc.errno
print(results)
'''
    results = list(validate_many([Task(code), Task("print('still here')")], settings=FAST))
    attack, after = results[0][1], results[1][1]
    assert "sent" not in attack.stdout_tail, attack.stdout_tail
    assert "'ptrace': -1" in attack.stdout_tail and "'mem': 'read'" not in attack.stdout_tail
    assert (after.mode, after.status, after.stdout_tail) == ("warm", "passed", "still here\n")


def test_crashes_are_failed_and_the_pool_serves_the_next() -> None:
    tasks = [Task("import ctypes\nctypes.string_at(0)"), Task("import os\nos._exit(7)"),
             Task("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
             Task("import sys\nsys.exit('bye')"), Task("print('fine')"),
             Task("while True:\n    pass")]
    results = [v for _, v in validate_many(tasks, settings=SandboxSettings(timeout=3))]
    assert [v.mode for v in results] == ["warm"] * 6
    assert [(v.status, v.exit_code) for v in results[:5]] == [
        ("failed", -11), ("failed", 7), ("failed", -9), ("failed", 1), ("passed", 0)]
    assert results[0].reason == "killed by SIGSEGV" and "bye" in results[3].stderr_tail
    assert results[5].status == "timeout"


def test_memory_over_the_whole_tree_is_bounded_and_recorded() -> None:
    v = next(validate_many([Task(TREE_HOG)], settings=SandboxSettings(timeout=60, memory_mb=300)))[1]
    assert (v.mode, v.status, v.reason) == ("warm", "failed", "memory")
    assert v.duration < 50


def test_the_pool_is_rebuilt_when_an_installed_version_changes(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())

    def install(version: str) -> None:
        for old in site.glob("tinydist-*.dist-info"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        info = site / f"tinydist-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tinydist\nVersion: {version}\n")
        (info / "top_level.txt").write_text("tinydist\n")
        (site / "tinydist.py").write_text(f"VERSION = {version!r}\n")
        os.utime(site)

    install("1.0")
    settings = SandboxSettings(timeout=20, interpreter=str(python))
    code = "import tinydist\nprint(tinydist.VERSION)"
    seen = []
    for _task, v in validate_many([Task(code), Task(code)], settings=settings):
        seen.append((v.mode, v.status, v.stdout_tail.strip(), v.packages))
        if len(seen) == 1:
            time.sleep(0.01)
            install("2.0")
    assert seen == [("warm", "passed", "1.0", {"tinydist": "1.0"}), ("warm", "passed", "2.0", {"tinydist": "2.0"})]


def test_a_module_that_fails_to_warm_up_is_served_cold_with_the_reason(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "brokenpkg-1.0.dist-info").mkdir(parents=True)
    (site / "brokenpkg-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg\nVersion: 1.0\n")
    (site / "brokenpkg-1.0.dist-info" / "top_level.txt").write_text("brokenpkg\n")
    (site / "brokenpkg.py").write_text("raise ImportError('no warm-up for me')\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "extra.pth").write_text(str(site) + "\n")
    settings = SandboxSettings(timeout=20, interpreter=str(venv / "bin" / "python"))
    results = [v for _, v in validate_many([Task("import brokenpkg"), Task("print('ok')")], settings=settings)]
    cold, warm = results
    assert (cold.mode, cold.status) == ("cold", "failed") and "no warm-up for me" in cold.stderr_tail
    assert cold.mode_reason.startswith("warm-up could not import brokenpkg: ImportError: no warm-up for me")
    assert (warm.mode, warm.status) == ("warm", "passed")


def test_one_warm_interpreter_serves_every_path_of_a_batch_each_child_its_own(tmp_path: Path) -> None:
    # Two example folders of one source, each with a module of the same name; the first also
    # shadows an installed package. One interpreter serves all three (no warm-up per folder),
    # and each child resolves its imports from its own path only, as a cold run does.
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, value in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "helper.py").write_text(f"WHERE = {value!r}\n")
    (first / "numpy.py").write_text("pi = 'the folder, not the package'\n")
    show = ("import helper, numpy, os, sys\n"
            "print('SEEN', helper.WHERE, numpy.pi, os.environ.get('PYTHONPATH', ''), os.getppid())\n")
    tasks = [Task(show, (str(first),)), Task(show, (str(second),)),
             Task("import numpy, sys, os\nprint('SEEN', numpy.pi, 'helper' in sys.modules, "
                  "os.environ.get('PYTHONPATH', ''), os.getppid())")]
    with counted_starts() as starts:
        results = [v for _, v in validate_many(tasks, settings=FAST)]
    assert [v.mode for v in results] == ["warm"] * 3, [v.mode_reason for v in results]
    assert all(v.status == "passed" for v in results), [(v.reason, v.stderr_tail) for v in results]
    seen = [v.stdout_tail.rpartition("SEEN ")[2].split() for v in results]
    assert seen[0][:3] == ["first", "the", "folder,"] and seen[0][-2] == os.path.realpath(first)
    assert seen[1][:2] == ["second", "3.141592653589793"] and seen[1][-2] == os.path.realpath(second)
    assert seen[2][:2] == ["3.141592653589793", "False"] and len(seen[2]) == 3  # no PYTHONPATH
    assert len(starts) == 1 and set(starts[0]) == {os.path.realpath(first), os.path.realpath(second)}
    assert len({s[-1] for s in seen}) == 1  # the same warm parent forked all three


def test_batches_are_domains_of_their_own_and_one_slow_snippet_holds_up_one_core(tmp_path: Path) -> None:
    # Two sources' batches, each with a folder holding helper.py. Source A's first snippet waits
    # for a flag file in its own folder, which the test writes only once source B's two snippets
    # are done: that they can be done meanwhile shows the idle server moved on to B (served
    # apart from A's, neither seeing the other's folder), instead of waiting for A's slow one.
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "helper.py").write_text(f"WHERE = {folder.name!r}\n")
    waits = ("import os, time, helper\n"
             "deadline = time.monotonic() + 300\n"
             "while not os.path.exists(os.path.join(os.path.dirname(helper.__file__), 'flag')):\n"
             "    assert time.monotonic() < deadline, 'no flag: source B was not served meanwhile'\n"
             "    time.sleep(0.05)\n"
             "print('SEEN', helper.WHERE, os.readlink('/proc/self/ns/pid'))\n")
    show = ("import os, helper\n"
            "print('SEEN', helper.WHERE, os.path.exists({other!r}), os.readlink('/proc/self/ns/pid'))\n")
    batches = [[Task(waits, (str(a),), key="a-waits"), Task(show.format(other=str(b)), (str(a),), key="a")],
               [Task(show.format(other=str(a)), (str(b),), key=f"b{i}") for i in range(2)]]
    results = {}
    for task, v in sandbox.validate_batches(batches, settings=SandboxSettings(timeout=320), workers=2):
        results[task.key] = v
        if {"b0", "b1"} <= set(results) and not (a / "flag").exists():
            (a / "flag").write_text("go\n")
    assert set(results) == {"a-waits", "a", "b0", "b1"}
    assert all(v.status == "passed" and v.mode == "warm" for v in results.values()), \
        {k: (v.status, v.mode, v.reason, v.stderr_tail[-300:]) for k, v in results.items()}
    seen = {k: v.stdout_tail.rpartition("SEEN ")[2].split() for k, v in results.items()}
    assert [seen[k][0] for k in ("a-waits", "a", "b0", "b1")] == ["a", "a", "b", "b"]
    assert seen["a"][1] == seen["b0"][1] == seen["b1"][1] == "False"  # the other folder is not there
    # one server took A's second snippet then both of B's, in a sandbox of B's own
    assert seen["b0"][-1] == seen["b1"][-1] and seen["b0"][-1] not in (seen["a"][-1], seen["a-waits"][-1])


@contextlib.contextmanager
def counted_starts() -> Iterator[list[tuple[str, ...]]]:
    """While inside: the python_path of each warm pool started, in the list it yields."""
    starts: list[tuple[str, ...]] = []
    original = WarmPool.start

    def counted(self: WarmPool) -> None:
        starts.append(self.python_path)
        original(self)

    WarmPool.start = counted  # type: ignore[method-assign]
    try:
        yield starts
    finally:
        WarmPool.start = original  # type: ignore[method-assign]


def batches_of_helpers(tmp_path: Path, names: str, size: int) -> list[list[Task]]:
    """One batch per name, each of ``size`` tasks that print which folder's helper they import."""
    batches = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "helper.py").write_text(f"WHERE = {name!r}\n")
        batches.append([Task("import os, helper\nprint('SEEN', helper.WHERE, os.readlink('/proc/self/ns/pid'))\n",
                             (str(folder),), key=f"{name}{i}") for i in range(size)])
    return batches


def test_every_batch_gets_its_first_tasks_done_before_any_batchs_others(tmp_path: Path) -> None:
    batches = batches_of_helpers(tmp_path, "abc", 2)
    results = list(sandbox.validate_batches(batches, settings=FAST, workers=1, first=1))
    assert [t.key for t, _ in results] == ["a0", "b0", "c0", "a1", "b1", "c1"]
    assert all(v.status == "passed" and v.mode == "warm" for _, v in results), \
        [(v.reason, v.stderr_tail[-300:]) for _, v in results]
    assert [v.stdout_tail.split()[1] for _, v in results] == list("abcabc")


def test_each_server_takes_a_batch_no_other_serves_and_keeps_it_from_head_to_rest(tmp_path: Path) -> None:
    # Two servers, two batches of three, each batch's first task handed out first: the servers
    # start on a batch each (one warm-up per batch, not one per server) and go on from its head
    # to its rest without another; only the one done first may then help with the other's rest.
    with counted_starts() as starts:
        results = {t.key: v for t, v in sandbox.validate_batches(
            batches_of_helpers(tmp_path, "ab", 3), settings=FAST, workers=2, first=1)}
    assert set(results) == {"a0", "a1", "a2", "b0", "b1", "b2"}
    assert all(v.status == "passed" and v.mode == "warm" for v in results.values()), \
        [(v.reason, v.stderr_tail[-300:]) for v in results.values()]
    assert all(v.stdout_tail.split()[1] == key[0] for key, v in results.items())
    batch_of = [p[0].rpartition("/")[2] for p in starts]
    assert sorted(batch_of[:2]) == ["a", "b"] and len(batch_of) <= 3, batch_of


@contextlib.contextmanager
def pools_die_on(marker: str) -> Iterator[None]:
    """While inside: a warm pool asked to run code holding ``marker`` closes and reports it died."""
    original = WarmPool.run

    def dies(self: WarmPool, code: str, python_path: tuple[str, ...] | None = None) -> sandbox.supervise.Run:
        if marker in code:
            self.close()
            raise PoolDied("killed")
        return original(self, code, python_path)

    WarmPool.run = dies  # type: ignore[method-assign]
    try:
        yield
    finally:
        WarmPool.run = original  # type: ignore[method-assign]


def test_a_pool_killed_mid_batch_is_restarted_and_one_that_keeps_dying_raises() -> None:
    def zygotes() -> list[int]:
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ours_zygote(int(p.name))]

    it = validate_many([Task("print(1)"), Task("print(2)")], settings=FAST)
    assert next(it)[1].stdout_tail == "1\n"
    alive = zygotes()
    assert alive
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    assert next(it)[1].stdout_tail == "2\n"  # served by a fresh warm interpreter

    with pools_die_on("die"):
        it = validate_many([Task("print(1)"), Task("# die"), Task("print(3)")], settings=FAST)
        assert next(it)[1].status == "passed"
        with pytest.raises(PoolDied):
            next(it)
    assert zygotes() == []


HOLDER = r'''
import os, socket, subprocess, tempfile, time
open("/tmp/evil", "w").write("x")
open("/dev/shm/evil", "w").write("x")
open(os.path.join(tempfile.gettempdir(), "evil"), "w").write("x")
subprocess.Popen(["sleep", "600"])
listener = socket.socket()
listener.bind(("127.0.0.1", 50007))
listener.listen()
print("HELD", time.time())
time.sleep(HOLD)
print("FREED", time.time())
'''

TIMED_PROBE = PROBE + r'''
import socket, time
try:
    socket.create_connection(("127.0.0.1", 50007), timeout=1).close()
    port = "open"
except OSError:
    port = "closed"
print("AT", time.time(), port)
'''


def test_interpreters_side_by_side_are_each_a_full_sandbox() -> None:
    # One shared queue, two warm interpreters: while one child holds files in /tmp and /dev/shm,
    # a process and a loopback port, the other interpreter's children see none of it. On a loaded
    # machine the probes may all run before the holder starts or after it ends: then again, holding longer.
    during: list[dict] = []
    for hold in (8, 20, 45):
        tasks = [Task(HOLDER.replace("HOLD", str(hold)))] + [Task(TIMED_PROBE) for _ in range(40)]
        settings = SandboxSettings(timeout=hold + 30)
        results = dict((id(t), v) for t, v in validate_many(tasks, settings=settings, workers=2))
        assert [results[id(t)].mode for t in tasks] == ["warm"] * len(tasks)
        held = results[id(tasks[0])]
        assert held.status == "passed", (held.reason, held.stderr_tail)
        start = float(held.stdout_tail.split("HELD")[1].split()[0])
        end = float(held.stdout_tail.split("FREED")[1].split()[0])
        for t in tasks[1:]:
            v = results[id(t)]
            seen = state_of(v)
            at, port = v.stdout_tail.rpartition("\nAT ")[2].split()[:2]
            assert "evil" not in seen["tmp"] and (seen["shm"], seen["others"], port) == ([], [], "closed")
            if start < float(at) < end:
                during.append(seen)
        if during:
            break
    assert during, "no probe ran while the other interpreter's child held its resources"


def test_a_pool_dying_twice_with_interpreters_side_by_side_raises_and_closes_them_all() -> None:
    with pools_die_on("die"):
        tasks = [Task(f"print({i})") for i in range(6)] + [Task("# die")] + [Task(f"print({i})") for i in range(20)]
        got = []
        with pytest.raises(PoolDied):
            for _t, v in validate_many(tasks, settings=FAST, workers=2):
                got.append(v)
        assert got and all(v.status == "passed" for v in got) and len(got) < len(tasks)
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _ours_zygote(int(p.name))]


def _ours_zygote(pid: int) -> bool:
    """Whether ``pid`` is a warm interpreter descended from this test process (not another run's)."""
    try:
        if b"The warm interpreter: exec'd" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
    except OSError:
        return False
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == os.getpid():
            return True
    return False
