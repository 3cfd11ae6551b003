"""The validation sandbox, run for real: child processes, namespaces where this machine has them.

Hostile snippets here are bounded (200 sleepers, not an unbounded fork bomb; a
256 MB memory limit; 200 MB of output) and every assertion about containment
is conditioned on the isolation level the run itself recorded, so the suite
states what held on this machine rather than assuming it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest

from jupyter_codedistiller.distill.sandbox import (
    SandboxSettings,
    isolates_network,
    isolation_available,
    validate,
)
from jupyter_codedistiller.model import Validation

from .hostile.scenarios import processes_with

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox targets Linux")

FAST = SandboxSettings(timeout=10)
SCRUBBED_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "MPLBACKEND", "PYTHONDONTWRITEBYTECODE",
                "PYTHONHASHSEED", "PYTHONNOUSERSITE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "PYTHONPATH"}


def features(isolation: str | None) -> set[str]:
    parts = (isolation or "").split("+")
    return {parts[0].split("-")[0], *parts[1:]} | ({"net"} if isolates_network(isolation) else set())


def refuses_root_fallback(method: str) -> str | None:
    """Why the sandbox refuses every run of ``method`` here (root without a usable throwaway uid), or None.

    Without namespaces, root's throwaway uid cannot reach an interpreter under a private
    home (``/root`` is 0700): the sandbox then refuses rather than run snippets as root.
    """
    if method != "none" or os.geteuid() != 0:
        return None
    probe = validate("print('plain')", settings=SandboxSettings(timeout=10, isolation=method))
    if probe.status == "skipped" and "throwaway uid cannot read" in (probe.reason or ""):
        return probe.reason
    return None


def sleeper_marker() -> str:
    """A unique ``sleep`` duration, to find the sleepers a snippet started."""
    return f"{4000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"


# ------------------------------------------------------------------ outcomes


def test_isolation_is_probed_once_and_names_what_this_machine_gives() -> None:
    level = isolation_available()
    assert level == isolation_available()
    assert level == "rlimits-only" or level.split("+")[0] in (
        "unshare", "unshare-net", "bwrap", "bwrap-net", "uid")
    if shutil.which("unshare") and os.geteuid() == 0:
        # As root with util-linux, namespaces are expected to work (they do on the CI VM).
        assert level.startswith("unshare-net+pid+fs"), level
    with pytest.raises(ValueError):
        isolation_available("docker")
    with pytest.raises(ValueError):
        SandboxSettings(isolation="docker")


def test_passing_code_records_environment_output_and_imported_distributions() -> None:
    v = validate("import json, nbformat, git\nprint('kaplan', json.dumps([1, 2]))", settings=FAST)
    assert v.status == "passed", v
    assert v.reason is None and v.exit_code == 0
    assert v.stdout_tail == "kaplan [1, 2]\n" and v.stderr_tail == ""
    assert v.packages == {"nbformat": metadata.version("nbformat"),
                          "GitPython": metadata.version("GitPython")}  # json: stdlib, not listed
    assert v.python_version == platform.python_version()
    assert v.interpreter == os.path.abspath(sys.executable)
    assert v.isolation and v.isolation.endswith("rlimits") and v.isolation.startswith(
        isolation_available().split("+")[0])
    assert 0 < v.duration < 10
    assert datetime.fromisoformat(v.when).tzinfo is not None


def test_failing_snippet_is_failed_with_exit_code_and_its_own_traceback() -> None:
    v = validate("def fit(x):\n    raise ValueError('no events in group ' + x)\n\nfit('B')\n",
                 settings=FAST)
    assert v.status == "failed"
    assert v.exit_code == 1
    assert v.reason == "ValueError: no events in group B"
    assert 'snippet.py", line 4, in <module>' in v.stderr_tail
    assert 'line 2, in fit' in v.stderr_tail
    assert "<string>" not in v.stderr_tail  # the runner's own frame is not shown
    bad = validate("def f(:\n    pass\n", settings=FAST)
    assert bad.status == "failed" and bad.reason.startswith("SyntaxError")
    exited = validate("import sys\nprint('partial')\nsys.exit(3)", settings=FAST)
    assert (exited.status, exited.exit_code, exited.stdout_tail) == ("failed", 3, "partial\n")


def test_python_path_makes_the_checkout_importable_and_records_what_it_pulled_in(
        tmp_path: Path) -> None:
    pkg = tmp_path / "checkout" / "survkit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import nbformat\nHAZARD = 0.25\n")
    v = validate("import survkit\nprint(survkit.HAZARD)", python_path=[str(tmp_path / "checkout")],
                 settings=FAST)
    assert v.status == "passed", v.stderr_tail
    assert v.stdout_tail == "0.25\n"
    # survkit is local (no distribution); what it imported is recorded instead.
    assert v.packages["nbformat"] == metadata.version("nbformat")


def test_another_interpreter_is_used_and_recorded(tmp_path: Path) -> None:
    base = os.path.realpath(sys.executable)  # the interpreter behind the venv, without its packages
    v = validate("import sys\nprint(sys.prefix)", settings=SandboxSettings(interpreter=base,
                                                                           timeout=10))
    assert v.status == "passed", v.stderr_tail
    assert v.interpreter == base
    assert v.stdout_tail.strip() == sys.base_prefix
    missing = validate("import sys", settings=SandboxSettings(
        interpreter=str(tmp_path / "no-such-python"), timeout=5))
    assert missing.status == "skipped" and "cannot run" in missing.reason


# ------------------------------------------------------------------ containment


def test_infinite_loop_times_out_and_its_whole_process_group_dies() -> None:
    marker = sleeper_marker()
    code = (f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n"
            "print('looping', flush=True)\nwhile True:\n    pass\n")
    started = time.monotonic()
    v = validate(code, settings=SandboxSettings(timeout=2))
    elapsed = time.monotonic() - started
    assert v.status == "timeout"
    assert v.reason == "exceeded the 2 s wall-clock limit"
    assert 2 <= v.duration < 5 and elapsed < 8
    assert v.stdout_tail == "looping\n"
    assert processes_with(marker) == []


def test_cpu_limit_ends_a_busy_loop_as_a_timeout() -> None:
    v = validate("while True:\n    pass", settings=SandboxSettings(timeout=20, cpu_seconds=1))
    assert v.status == "timeout"
    assert "CPU time limit (1 s)" in v.reason
    assert v.duration < 10


# The peak is VmHWM, the high-water mark of this process's own memory map. Not ru_maxrss: that
# survives execve, so a process pytest started begins with pytest's own peak (hundreds of MB late
# in a full run), and growth below it would not show.
_PEAK_PROBE = """
import dataclasses, json, sys
from jupyter_codedistiller.distill.sandbox import SandboxSettings, validate
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
validate("pass", settings=SandboxSettings(timeout=30))  # the isolation probe and lazy imports
before = peak_kib()
v = validate(sys.argv[1], settings=SandboxSettings(**json.loads(sys.argv[2])))
grown = peak_kib() - before
print(json.dumps({"grown_kib": grown, "validation": dataclasses.asdict(v)}))
"""


def validate_in_fresh_process(code: str, **settings: object) -> tuple[Validation, int]:
    """``validate(code)`` run by a fresh interpreter, and how much its peak memory (KiB) grew
    while it ran: a peak only rises, so measured in this test process it would stay put once
    any earlier test had raised it, and the check could not fail."""
    done = subprocess.run([sys.executable, "-c", _PEAK_PROBE, code, json.dumps(settings)],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout.splitlines()[-1])
    return Validation(**data["validation"]), data["grown_kib"]


def test_memory_hog_fails_with_memory_error_and_leaves_this_process_alone() -> None:
    v, grown_kib = validate_in_fresh_process("hog = bytearray(2 * 1024 ** 3)\nprint('allocated')",
                                             timeout=10, memory_mb=256)
    assert v.status == "failed"
    assert v.reason == "MemoryError"
    assert "allocated" not in v.stdout_tail
    assert grown_kib < 100 * 1024


def test_fork_bomb_is_bounded_and_nothing_is_left_behind() -> None:
    marker = sleeper_marker()
    code = f"""
import subprocess
started = 0
for _ in range(200):
    try:
        subprocess.Popen(['sleep', '{marker}'])
        started += 1
    except OSError:
        break
print('started', started, flush=True)
while True:
    pass
"""
    v = validate(code, settings=SandboxSettings(timeout=3, max_processes=40))
    assert v.status == "timeout", v
    started = int(v.stdout_tail.split()[1])
    if "uid" in features(v.isolation):
        assert started < 40  # RLIMIT_NPROC holds for the throwaway uid (the runner counts too)
    else:
        assert started == 200  # no RLIMIT_NPROC without a uid of its own; the kill still holds
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_huge_output_keeps_only_the_tail_and_memory_stays_bounded() -> None:
    code = ("import sys\nline = 'x' * 1_000_000 + '\\n'\nfor _ in range(200):\n"
            "    sys.stdout.write(line)\nprint('END-OF-OUTPUT')\n")
    v, grown_kib = validate_in_fresh_process(code, timeout=30)
    assert v.status == "passed", v.stderr_tail
    assert v.stdout_tail.endswith("x\nEND-OF-OUTPUT\n")
    assert len(v.stdout_tail) == 2000
    assert grown_kib < 50 * 1024  # 200 MB went through; well under 50 MB stayed


def test_the_peak_memory_check_sees_a_supervisor_that_holds_the_output() -> None:
    """The measure above can fail: a fresh process that keeps 400 MB shows the growth (more
    than the 50 MB bound however far its memory fell below the earlier peak)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_PROBE.replace(
        "grown = ", "held = bytearray(400 * 1024 * 1024); held[::4096] = b'x' * len(held[::4096])\ngrown = "),
        "print(1)", "{}"], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    grown_kib = json.loads(done.stdout.splitlines()[-1])["grown_kib"]
    assert grown_kib > 200 * 1024, grown_kib


def test_secrets_in_this_process_environment_never_reach_the_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_SECRET_ACCESS_KEY": "aws-fake-9f8e7d", "OPENAI_API_KEY": "sk-fake-123456",
               "GITHUB_TOKEN": "ghp_fakefakefake", "CODEDISTILLER_TEST_SECRET": "cd-fake-secret",
               "JUPYTER_TOKEN": "jt-fake"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    v = validate("import json, os\nprint(json.dumps(dict(os.environ)))",
                 python_path=["/nonexistent-checkout"], settings=FAST)
    assert v.status == "passed"
    env = json.loads(v.stdout_tail)
    assert set(env) <= SCRUBBED_ENV
    assert env["MPLBACKEND"] == "Agg" and env["PYTHONHASHSEED"] == "0"
    assert env["HOME"] == os.path.dirname(env["TMPDIR"])  # the fresh working directory
    assert not any(value in v.stdout_tail for value in secrets.values())


def test_network_to_a_listener_of_this_test_is_cut_where_the_os_allows() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = f"""
import socket
s = socket.socket()
s.settimeout(3)
try:
    s.connect(('127.0.0.1', {port}))
    s.sendall(b'exfiltrated')
    print('connected')
except OSError as exc:
    print('blocked:', exc)
"""
    try:
        v = validate(code, settings=FAST)
        time.sleep(0.1)
        try:
            conn, _ = listener.accept()
            conn.close()
            accepted = True
        except BlockingIOError:
            accepted = False
    finally:
        listener.close()
    assert v.status == "passed"
    if isolates_network(v.isolation):
        assert v.stdout_tail.startswith("blocked:")
        assert not accepted
    else:  # documented: without a network namespace, loopback is reachable
        assert v.stdout_tail == "connected\n" and accepted


def test_writes_outside_the_working_directory_are_contained(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    target.write_text("original\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    code = f"""
import os
for path in [{str(target)!r}, {str(checkout / "planted.py")!r}, 'inside.txt']:
    try:
        with open(path, 'w') as f:
            f.write('overwritten')
        print('wrote', os.path.basename(path))
    except OSError as exc:
        print('refused', os.path.basename(path), type(exc).__name__)
"""
    v = validate(code, python_path=[str(checkout)], settings=FAST)
    assert v.status == "passed", v.stderr_tail
    assert "wrote inside.txt" in v.stdout_tail  # its own working directory is writable
    if "fs" in features(v.isolation):
        # /tmp is an empty private tmpfs, the checkout a read-only bind: nothing outside changed.
        assert target.read_text() == "original\n"
        assert not (checkout / "planted.py").exists()
        assert "refused planted.py" in v.stdout_tail
    else:  # documented: rlimits-only does not contain file writes
        assert target.read_text() == "overwritten"


def test_filling_the_disk_stops_at_the_working_directory_quota() -> None:
    code = ("for i in range(64):\n    with open(f'part{i}.bin', 'wb') as f:\n"
            "        f.write(bytes(1 << 20))\n    print(i, flush=True)\n")
    v = validate(code, settings=SandboxSettings(timeout=10, file_mb=2))
    if "fs" not in features(v.isolation):
        pytest.skip(f"no private working directory here ({v.isolation})")
    # With fs isolation the working directory is a tmpfs of 4 x file_mb (at least 16 MB).
    assert (v.status, v.reason) == ("failed", "OSError: [Errno 28] No space left on device")
    assert int(v.stdout_tail.split()[-1]) < 16


def test_home_directories_are_hidden_except_what_the_interpreter_needs() -> None:
    home = os.path.realpath(os.path.expanduser("~"))
    v = validate(f"import os\nprint(sorted(os.listdir({home!r})))", settings=FAST)
    assert v.status == "passed", v.stderr_tail
    seen = set(eval(v.stdout_tail))  # a list literal printed by the snippet
    if "fs" not in features(v.isolation):
        pytest.skip(f"no file-system isolation here ({v.isolation})")
    needed = set()
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path}:
        real = os.path.realpath(p) if p else ""
        if real.startswith(home + os.sep):
            needed.add(Path(real).relative_to(home).parts[0])
    assert seen <= needed
    assert ".ssh" not in seen


@pytest.mark.parametrize("method", ["auto", "none"])  # none: the host directory itself
def test_working_directory_is_removed_even_when_the_child_locks_it_down(method: str) -> None:
    if refuses_root_fallback(method):
        pytest.skip("as root without namespaces the sandbox refuses to run (see the rlimits-only test)")
    code = """
import os
os.makedirs('a/b')
with open('a/b/data.txt', 'w') as f:
    f.write('x')
os.chmod('a/b/data.txt', 0o400)
os.chmod('a/b', 0o500)
os.chmod('a', 0o000)
os.symlink('/etc', 'escape')
print(os.getcwd())
"""
    v = validate(code, settings=SandboxSettings(timeout=10, isolation=method))
    assert v.status == "passed", v.stderr_tail
    workdir = v.stdout_tail.strip()
    assert workdir and not os.path.lexists(workdir)
    assert os.path.isdir("/etc")  # the symlink was removed, not followed
    timed = validate("import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    pass",
                     settings=SandboxSettings(timeout=1, isolation=method))
    assert timed.status == "timeout" and not os.path.lexists(timed.stdout_tail.strip())


@pytest.mark.parametrize("method", ["auto", "none"])
def test_a_killed_caller_takes_its_sandbox_with_it(method: str) -> None:
    if refuses_root_fallback(method):
        pytest.skip("as root without namespaces the sandbox refuses to run (see the rlimits-only test)")
    marker = sleeper_marker()
    code = f"import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(600)"
    caller = subprocess.Popen([sys.executable, "-c", (
        "from jupyter_codedistiller.distill.sandbox import SandboxSettings, validate\n"
        f"validate({code!r}, settings=SandboxSettings(timeout=120, isolation={method!r}))")])
    try:
        deadline = time.monotonic() + 20
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(marker), "the snippet never started"
        workdirs = [p for p in Path(tempfile.gettempdir()).iterdir()
                    if p.name.startswith(f"codedistiller-sandbox-{caller.pid}-")]
        assert len(workdirs) == 1
    finally:
        caller.kill()  # SIGKILL: no finally clause runs in the caller
        caller.wait()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
    # The next process to use the sandbox removes what the killed one left behind.
    subprocess.run([sys.executable, "-c", "from jupyter_codedistiller.distill.sandbox import "
                    "isolation_available; isolation_available()"], check=True)
    assert not workdirs[0].exists()


def test_parallel_validations_do_not_interfere() -> None:
    def one(i: int) -> Validation:
        return validate(f"import os\nprint({i}, os.getcwd())", settings=FAST)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(6)))
    assert [v.status for v in results] == ["passed"] * 6
    assert [int(v.stdout_tail.split()[0]) for v in results] == list(range(6))
    assert len({v.stdout_tail.split()[1] for v in results}) == 6


# ------------------------------------------------------------------ skipped, not failed


@pytest.mark.parametrize(("code", "reason"), [
    ("import urllib.request\nurllib.request.urlopen('http://example.invalid/waltons.csv')",
     "needs network"),
    ("import socket\nsocket.getaddrinfo('data.example.invalid', 443)", "needs network"),
    ("with open('waltons.csv') as f:\n    rows = f.read()", "needs data file 'waltons.csv'"),
    ("class Model:\n    def cuda(self):\n"
     "        raise AssertionError('Torch not compiled with CUDA enabled')\nModel().cuda()",
     "needs GPU"),
    ("import lifelines_not_installed_here\n", "needs package lifelines_not_installed_here"),
    ("name = input('Sample id? ')", "needs interactive input"),
    ("import subprocess\nsubprocess.run(['Rscript-not-installed', 'deseq2.R'])",
     "needs program 'Rscript-not-installed'"),

    # No telling exception, but the code visibly needs a GPU / the network:
    ("model = object()\nmodel.to('cuda')", "needs GPU"),
    ("import urllib.request\ntry:\n    urllib.request.urlopen('https://example.invalid/a.csv')\n"
     "except OSError:\n    pass\nraise RuntimeError('download failed')", "needs network"),
])
def test_environment_gaps_are_skipped_with_a_reason(code: str, reason: str) -> None:
    v = validate(code, settings=FAST)
    assert (v.status, v.reason) == ("skipped", reason), v.stderr_tail
    assert v.exit_code not in (0, None) or "not run" in (v.reason or "")


def test_requirements_name_the_missing_distribution() -> None:
    v = validate("import sklearnish\n", settings=FAST,
                 requirements={"scikit-learnish": "1.5.0", "nbformat": None})
    assert (v.status, v.reason) == ("skipped", "needs package scikit-learnish")


@pytest.mark.parametrize("code", [
    "import json.no_such_submodule",  # the package is there: the code is out of date
    "from json import no_such_name",
    "raise OSError('disk quota exceeded')",
])
def test_code_that_is_wrong_for_the_installed_packages_is_failed(code: str) -> None:
    assert validate(code, settings=FAST).status == "failed"


# ------------------------------------------------------------------ other methods


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_bubblewrap_method_contains_the_same_cases(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    level = isolation_available("bwrap")
    assert level.startswith("bwrap-net+pid+fs"), level
    settings = SandboxSettings(timeout=5, isolation="bwrap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-fake-bwrap")
    target = tmp_path / "outside.txt"
    code = f"""
import os, socket
print(sorted(os.environ))
try:
    open({str(target)!r}, 'w').write('x')
    print('wrote outside')
except OSError:
    print('refused outside')
s = socket.socket(); s.settimeout(1)
try:
    s.connect(('1.1.1.1', 53)); print('online')
except OSError:
    print('offline')
"""
    v = validate(code, settings=settings)
    assert v.status == "passed", v.stderr_tail
    assert v.isolation == "bwrap-net+pid+fs+rlimits"
    assert "aws-fake-bwrap" not in v.stdout_tail and "AWS_SECRET_ACCESS_KEY" not in v.stdout_tail
    assert "refused outside" in v.stdout_tail and not target.exists()
    assert v.stdout_tail.endswith("offline\n")
    hog = validate("x = bytearray(2 * 1024 ** 3)", settings=SandboxSettings(
        timeout=5, memory_mb=256, isolation="bwrap"))
    assert (hog.status, hog.reason) == ("failed", "MemoryError")
    crash = validate("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", settings=settings)
    assert (crash.status, crash.exit_code) == ("failed", -11)


def test_rlimits_only_method_says_so_and_will_not_run_visible_network_code() -> None:
    settings = SandboxSettings(timeout=5, isolation="none")
    v = validate("import os\nprint('plain', os.getuid())", settings=settings)
    refused = refuses_root_fallback("none")
    if refused:  # never silently as root: refused, one line, nothing run
        assert v.status == "skipped" and v.reason == refused and "\n" not in refused
        assert v.stdout_tail == ""
    else:
        assert v.status == "passed"
        assert v.isolation in ("rlimits-only", "uid+rlimits")
        assert os.geteuid() != 0 or not v.stdout_tail.strip().endswith(" 0")
    assert not isolates_network(v.isolation)
    fetch = validate("import pandas as pd\ndf = pd.read_csv('https://example.org/waltons.csv')",
                     settings=settings)
    assert fetch.status == "skipped"
    assert fetch.reason.startswith("needs network (not run")
    assert fetch.duration == 0.0


PLOT_PROBE = r'''
import glob, logging, os, sys
before = glob.glob(os.path.expanduser("~/.cache/matplotlib/fontlist-v*.json"))
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
import matplotlib.pyplot as plt
plt.plot([1, 2])
print("BEFORE", len(before))
'''


def test_a_cold_plotting_example_finds_the_font_list_built_and_its_own_copy() -> None:
    pytest.importorskip("matplotlib")
    settings = SandboxSettings(timeout=60)
    first = validate(PLOT_PROBE, settings=settings)
    assert first.status == "passed", (first.reason, first.stderr_tail)
    assert "BEFORE 1" in first.stdout_tail and "generated new fontManager" not in first.stdout_tail
    # A snippet spoiling its copy (matplotlib would rebuild from a bad one) does not touch the next one's.
    spoil = validate("import glob, os  # plot\nfor p in glob.glob(os.path.expanduser("
                     "'~/.cache/matplotlib/fontlist-v*.json')):\n    open(p, 'w').write('{bad')\n", settings=settings)
    assert spoil.status == "passed", (spoil.reason, spoil.stderr_tail)
    again = validate(PLOT_PROBE, settings=settings)
    assert "BEFORE 1" in again.stdout_tail and "generated new fontManager" not in again.stdout_tail
    # The control: with a cache directory of its own, matplotlib builds the list, and says so.
    own = validate("import os\nos.environ['MPLCONFIGDIR'] = os.path.abspath('own')\n" + PLOT_PROBE, settings=settings)
    assert own.status == "passed" and "generated new fontManager" in own.stdout_tail, own.stdout_tail
