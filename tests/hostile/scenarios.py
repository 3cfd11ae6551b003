"""The scenarios, shared by the tests (short) and benchmarks/reliability.py (long).

``hostile`` distils the hostile repository (``repos.py``) with the real
refresh and sandbox; ``verdicts`` says, attack by attack, whether it was
contained.
``concurrency`` runs the background distiller (``codedistiller daemon``) on a
repository that keeps receiving commits while four processes search, flag and
review; it returns what every worker reported and what the library holds.
``crash`` SIGKILLs ``codedistiller refresh`` at random moments, checking the
library after every kill, then lets one refresh finish and compares the result
with an uninterrupted run. Both only measure; the callers assert or print.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from jupyter_codedistiller.cli import main as cli_main
from jupyter_codedistiller.distill import sources
from jupyter_codedistiller.distill.refresh import RefreshReport, refresh
from jupyter_codedistiller.distill.sandbox import SandboxSettings
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Snippet, Validation

from ..gitrepos import SAMPLE_FILES, commit, file_url, make_repo
from .integrity import connect, digests, dump, library_problems
from .repos import (
    ODD_NAMES,
    PROBLEM_CASES,
    SECRET_NAME,
    HostileSetup,
    hostile_links,
    hostile_setup,
    make_hostile_repo,
)

ROOT = Path(__file__).resolve().parents[2]
WORKDIR_PREFIX = "codedistiller-sandbox-"


def example(i: int, version: int) -> str:
    """An ordinary example script whose code differs for every (i, version)."""
    return (f'"""Cohort summary {i}, version {version}."""\nimport statistics\n\n'
            f"values = [{i}, {version}, {i + version + 1}]\n"
            f"print(statistics.mean(values) * {version + 1})\n")


def guide(version: int) -> str:
    return (f"# Guide\n\n## Totals\n\nAdd them up (v{version}):\n\n```python\n"
            f"totals = [{version}, 2, 3]\nprint(sum(totals))\n```\n\n## Extremes\n\n"
            f"```python\nprint(max(totals) - min(totals) + {version})\n```\n")


class Upstream:
    """A repository of example scripts that changes on demand: edits, additions, deletions."""

    def __init__(self, path: Path, files: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.versions = dict.fromkeys(range(files), 1)
        self.next_index = files
        self.guide = 1
        content: dict[str, str | bytes] = {f"examples/ex_{i:03d}.py": example(i, 1) for i in self.versions}
        content["docs/guide.md"] = guide(1)
        content["LICENSE"] = "MIT License\n\nPermission is hereby granted, free of charge, to any person\n"
        self.repo: git.Repo = make_repo(path, content)
        self.commits = [self.repo.head.commit.hexsha]
        self.url = file_url(path)

    def change(self, edits: int) -> str:
        """Edit ``edits`` scripts, add one, delete one, sometimes touch the guide; commit."""
        changed: dict[str, str | bytes] = {}
        edited = self.rng.sample(sorted(self.versions), min(edits, len(self.versions) - 1))
        for i in edited:
            self.versions[i] += 1
            changed[f"examples/ex_{i:03d}.py"] = example(i, self.versions[i])
        gone = self.rng.choice(sorted(set(self.versions) - set(edited)))
        new = self.next_index
        self.next_index += 1
        self.versions[new] = 1
        changed[f"examples/ex_{new:03d}.py"] = example(new, 1)
        del self.versions[gone]
        if self.rng.random() < 0.3:
            self.guide += 1
            changed["docs/guide.md"] = guide(self.guide)
        sha = commit(self.repo, changed, delete=[f"examples/ex_{gone:03d}.py"])
        self.commits.append(sha)
        return sha


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jupyter_codedistiller.cli", "--home", str(home), *args]


def child_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "CODEDISTILLER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    return env


def sandbox_processes(pid: int) -> list[int]:
    """Processes still working in a sandbox started by process ``pid`` (their HOME says so)."""
    needle = f"HOME={tempfile.gettempdir()}/{WORKDIR_PREFIX}{pid}-".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def leftover_workdirs(pids: list[int]) -> list[str]:
    top = Path(tempfile.gettempdir())
    return [p.name for pid in pids for p in top.glob(f"{WORKDIR_PREFIX}{pid}-*")]


# ---------------------------------------------------------------- hostile repositories

HOSTILE_SETTINGS = SandboxSettings(timeout=3, memory_mb=256)
PASSWD_LINE = re.compile(r"root:[^:\n]*:0:0:")


def memory_kib(name: str) -> int:
    """VmRSS or VmHWM (the peak) of this process, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_memory() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def processes_with(marker: str) -> list[int]:
    """Pids of ``sleep MARKER`` processes anywhere on the machine."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == b"sleep\0" + marker.encode() + b"\0":
                        found.append(int(entry))
            except OSError:
                pass
    return found


@dataclass
class HostileRun:
    setup: HostileSetup  # the caller closes it
    home: Path
    report: RefreshReport
    snippets: dict[str, Snippet]  # the hostile source's, by path
    benign: list[Snippet]  # the ordinary source refreshed alongside
    peak_growth_kib: int | None  # of this process during the refresh
    leftovers: list[int]  # fork-bomb processes alive after the refresh
    accepted: dict[str, int]  # connections that reached the listeners
    cwd: Path
    seconds: float = 0.0


def hostile(tmp: Path, settings: SandboxSettings = HOSTILE_SETTINGS, print_mb: int = 1024) -> HostileRun:
    """Distil the hostile repository and an ordinary one in one refresh, in this process.

    HOME points at the fake home and the secret is in the environment only
    during the refresh; the working directory is ``tmp``.
    """
    home = tmp / "home"
    setup = hostile_setup(tmp, home)
    setup.print_mb = print_mb
    saved = {k: os.environ.get(k) for k in ("HOME", SECRET_NAME, "CODEDISTILLER_HOME")}
    cwd = os.getcwd()
    try:
        make_hostile_repo(tmp / "hostile", setup)
        make_repo(tmp / "survkit", SAMPLE_FILES)
        os.environ["HOME"] = str(setup.fake_home)
        os.environ[SECRET_NAME] = setup.secret
        os.environ["CODEDISTILLER_HOME"] = str(home)
        os.chdir(tmp)
        with Library.open(home) as lib:
            sources.add(lib, file_url(tmp / "hostile"))
            sources.add(lib, file_url(tmp / "survkit"))
            measured = reset_peak_memory()
            before = memory_kib("VmRSS")
            started = time.monotonic()
            report = refresh(lib, workers=2, settings=settings)
            seconds = time.monotonic() - started
            growth = memory_kib("VmHWM") - before if measured else None
            # Killed processes take a moment to go on a loaded machine; an escaped one never does.
            deadline = time.monotonic() + 15
            while (leftovers := processes_with(setup.marker)) and time.monotonic() < deadline:
                time.sleep(0.2)
            snippets = {x.source.path: x for x in lib.all() if x.source.source_id == "hostile"}
            benign = [x for x in lib.all() if x.source.source_id == "survkit"]
    except BaseException:
        setup.close()
        raise
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return HostileRun(setup, home, report, snippets, benign, growth, leftovers, setup.accepted(), tmp,
                      seconds)


def verdicts(run: HostileRun) -> dict[str, str | None]:
    """Each attack -> None when it was contained and recorded, else what went wrong."""
    s, out = run.snippets, {}

    def v(path: str) -> Validation:
        return s[path].validation if path in s else Validation(status="pending", reason="missing")

    def check(case: str, ok: bool, why: str) -> None:
        out[case] = None if ok else why

    loop, bomb, hog = v("examples/infinite_loop.py"), v("examples/fork_bomb.py"), v("examples/memory_hog.py")
    check("infinite loop: timeout", loop.status == "timeout", f"{loop.status}: {loop.reason}")
    started = int(bomb.stdout_tail.split()[1]) if bomb.stdout_tail.startswith("processes") else -1
    limit = HOSTILE_SETTINGS.max_processes if "uid" in (bomb.isolation or "").split("+") else 1024
    check("fork bomb: timeout, bounded, nothing left", bomb.status == "timeout" and 0 < started <= limit
          and not run.leftovers, f"{bomb.status}, {started} processes, {len(run.leftovers)} left")
    check("memory hog: MemoryError", (hog.status, hog.reason) == ("failed", "MemoryError"),
          f"{hog.status}: {hog.reason}")
    write = v("examples/write_outside.py")
    landed = [t for t in run.setup.write_targets if os.path.isabs(t) and os.path.exists(t)]
    check("writes outside the working directory: none landed",
          write.status == "passed" and "WROTE" not in write.stdout_tail and not landed, f"landed: {landed}")
    secrets_seen = v("examples/read_secrets.py")
    texts = [x.code + x.validation.stdout_tail + x.validation.stderr_tail for x in [*s.values(), *run.benign]]
    exported = dump(run.home)
    leaked = [what for what, value in (("key", run.setup.key_text), ("secret", run.setup.secret))
              if any(value in t for t in texts) or value in exported]
    check("~/.ssh key and environment secret: hidden", secrets_seen.status == "passed" and not leaked
          and '"proc_environ_with_secret": []' in secrets_seen.stdout_tail, f"leaked: {leaked}")
    net = v("examples/network.py")
    check("network connections: none arrived", net.status == "passed" and "CONNECTED" not in net.stdout_tail
          and run.accepted == {"tcp": 0, "udp": 0}, f"{run.accepted}, {net.stdout_tail[:100]}")
    big = v("examples/print_gigabytes.py")
    growth = run.peak_growth_kib
    check("gigabytes of output: tail kept, memory bounded", big.status in ("passed", "timeout")
          and 0 < len(big.stdout_tail) <= 2000 and (growth is None or growth < 150 * 1024),
          f"{big.status}, tail {len(big.stdout_tail)}, peak growth {growth} KiB")
    links = hostile_links(run.setup)
    followed = [p for p in s if any(p == link or p.startswith(link + "/") for link in links)]
    check("symbolic links: not followed", not followed and not any(PASSWD_LINE.search(t) for t in texts),
          f"followed: {followed}")
    for path, words in PROBLEM_CASES.items():
        shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in path)
        mine = [p for p in run.report.problems if p.startswith(f"hostile: {shown}")]
        check(f"problem line: {shown}", len(mine) == 1 and words in mine[0] and path not in s
              and mine[0].isprintable(), f"{mine}")
    odd = [p for i, p in enumerate(ODD_NAMES) if v(p).stdout_tail != f"odd name {i}\n"]
    check("odd file names: kept as names, nothing run", not odd and not any(
        (w / "pwned-by-name").exists() for w in (run.cwd, run.home)), f"{odd}")
    shown = []
    for args in (["search", "innocent", "title"], ["why", s["examples/terminal_escapes.py"].id]
                 if "examples/terminal_escapes.py" in s else ["status"]):
        text = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()):
            cli_main(["--home", str(run.home), *args], out=text)
        shown.append(text.getvalue())
    check("terminal escapes: shown as text by the CLI", "examples/terminal_escapes.py" in s and not any(
        ch in t for t in shown for ch in "\x1b\x07\u202e"), "raw escapes printed")
    check("the rest of the refresh went on", not run.report.errors and v("examples/good_example.py").status
          == "passed" and {x.validation.status for x in run.benign} == {"passed"}, f"{run.report.errors}")
    problems = library_problems(run.home / "library.db")
    check("library intact", not problems, "; ".join(problems[:3]))
    return out


# ---------------------------------------------------------------- concurrency


@dataclass
class Concurrency:
    seconds: float
    workers: list[dict[str, Any]] = field(default_factory=list)
    worker_stderr: list[str] = field(default_factory=list)
    worker_exit: list[int] = field(default_factory=list)
    lost: dict[str, list[str]] = field(default_factory=dict)  # reported done, not in the library
    phantom: dict[str, list[str]] = field(default_factory=dict)  # in the library, never reported
    daemon_output: str = ""
    daemon_exit: int | None = None
    daemon_cycles: int = 0
    runs: int = 0
    run_errors: list[str] = field(default_factory=list)
    revisions_written: int = 0
    commits: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [e for w in self.workers for e in w["errors"]]

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for w in self.workers:
            total.update(w["counts"])
        return total


def _daemon_has_written(db: Path) -> bool:
    """Whether the daemon finished a cycle and one of its runs stored a revision."""
    conn = connect(db)
    try:
        progress = conn.execute("SELECT value FROM progress WHERE key = 'daemon'").fetchone()
        cycles = json.loads(progress[0]).get("cycles", 0) if progress else 0
        rows = conn.execute("SELECT counts FROM runs ORDER BY id").fetchall()[1:]  # [0]: the setup
        written = sum(json.loads(r[0]).get("updated", 0) + json.loads(r[0]).get("added", 0)
                      for r in rows if r[0])
        return cycles >= 1 and written > 0
    except Exception:  # noqa: BLE001 - a table mid-migration or a busy file: not yet
        return False
    finally:
        conn.close()


def concurrency(tmp: Path, seconds: float, *, workers: int = 4, files: int = 24,
                seed: int = 0, settle: float = 300.0) -> Concurrency:
    """Daemon + committer + ``workers`` users (half CLI, half magic) for ``seconds``; then,
    however loaded the machine is, up to ``settle`` more seconds until the daemon has finished
    a cycle that wrote (a condition, not a window: on two busy cores a cycle can take longer
    than the users' ``seconds``)."""
    home = tmp / "home"
    upstream = Upstream(tmp / "upstream", files, seed)
    with Library.open(home) as lib:
        src = sources.add(lib, upstream.url, name="cohorts")
        refresh(lib, workers=2, settings=SandboxSettings(timeout=5))
        ids = sorted(lib.ids_for_source(src.id))
    result = Concurrency(seconds=seconds)
    env = child_env(home)
    logs = tmp / "logs"
    logs.mkdir()
    daemon_log = open(logs / "daemon.log", "w+b")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(cli(home, "daemon", "--interval", "1", "--no-defaults", "--timeout", "5",
                                  "--workers", "2"), stdout=daemon_log, stderr=subprocess.STDOUT,
                              env=env, cwd=str(ROOT))
    stop = threading.Event()

    def committer() -> None:
        while not stop.wait(1.0):
            upstream.change(edits=3)
            result.commits += 1

    thread = threading.Thread(target=committer, daemon=True)
    users = []
    try:
        thread.start()
        for n in range(workers):
            kind = "cli" if n % 2 == 0 else "magic"
            users.append(subprocess.Popen(
                [sys.executable, "-m", "tests.hostile.worker", "--home", str(home), "--seconds",
                 str(seconds), "--name", f"user{n + 1}", "--kind", kind, "--ids", ",".join(ids),
                 "--seed", str(seed * 100 + n)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT)))
        for user in users:
            out, err = user.communicate(timeout=seconds + 120)
            result.worker_exit.append(user.returncode)
            result.worker_stderr.append(err)
            lines = out.strip().splitlines()
            result.workers.append(json.loads(lines[-1]) if lines else
                                  {"name": "?", "counts": {}, "flags": [], "reviews": [],
                                   "errors": ["no result"]})
        deadline = time.monotonic() + settle
        while (not _daemon_has_written(home / "library.db") and daemon.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
        for user in users:
            if user.poll() is None:
                user.kill()
        daemon.send_signal(signal.SIGTERM)
        try:
            result.daemon_exit = daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            result.daemon_exit = daemon.wait()
        daemon_log.seek(0)
        result.daemon_output = daemon_log.read().decode("utf-8", "replace")
        daemon_log.close()
    db = home / "library.db"
    conn = connect(db)
    try:
        for w in result.workers:
            for table, column, reported in (("flags", "reason", w["flags"]),
                                            ("reviews", "note", w["reviews"])):
                stored = Counter(r[0] for r in conn.execute(
                    f"SELECT {column} FROM {table} WHERE by = ? AND {column} LIKE 'concurrency %'",
                    (w["name"],)))
                said = Counter(reported)
                result.lost[f"{w['name']} {table}"] = sorted((said - stored).elements())
                result.phantom[f"{w['name']} {table}"] = sorted((stored - said).elements())
        progress = conn.execute("SELECT value FROM progress WHERE key = 'daemon'").fetchone()
        result.daemon_cycles = json.loads(progress[0]).get("cycles", 0) if progress else 0
        rows = conn.execute("SELECT counts, error FROM runs ORDER BY id").fetchall()[1:]  # [0]: the setup
        result.runs = len(rows)
        result.run_errors = [r[1] for r in rows if r[1] and r[1] != "interrupted"]
        result.revisions_written = sum(json.loads(r[0]).get("updated", 0) + json.loads(r[0]).get("added", 0)
                                       for r in rows)
    finally:
        conn.close()
    result.problems = library_problems(db)
    return result


# ---------------------------------------------------------------- crash consistency


@dataclass
class Kill:
    delay: float
    group: bool  # the whole process group (git too), not only the refresh process
    stage: str  # where the refresh was, as it last published
    pin: str  # the commit the library says the source is at, after the kill
    problems: list[str]
    consistent: bool  # the source's active snippets are exactly those of its recorded commit
    stray: list[int]  # sandbox processes still alive 5 s after the kill
    pending: int


@dataclass
class Crash:
    kills: list[Kill] = field(default_factory=list)
    calibration: float = 0.0
    final_exit: int | None = None
    final_output: str = ""
    final_problems: list[str] = field(default_factory=list)
    final_consistent: bool = False
    final_pending: int = 0
    same_as_uninterrupted: bool = False
    difference: str = ""
    leftover_workdirs: list[str] = field(default_factory=list)
    snippets: int = 0

    def stages(self) -> Counter[str]:
        return Counter(k.stage for k in self.kills)


def _stage(db: Path, pid: int) -> str:
    conn = connect(db)
    try:
        row = conn.execute("SELECT value FROM progress WHERE key = 'distiller'").fetchone()
    finally:
        conn.close()
    entry = json.loads(row[0]) if row else {}
    if entry.get("pid") != pid:
        return "start-up"  # killed before it published anything
    return str(entry.get("step") or "?")


def _source_state(db: Path, source_id: str) -> tuple[str, dict[str, str], int]:
    conn = connect(db)
    try:
        data = json.loads(conn.execute("SELECT data FROM sources WHERE id = ?", (source_id,)).fetchone()[0])
        pending = conn.execute("SELECT count(*) FROM snippets WHERE source_id = ? AND lifecycle = 'active' "
                               "AND validation_status = 'pending'", (source_id,)).fetchone()[0]
    finally:
        conn.close()
    return data.get("last_commit") or "", digests(db, source_id), pending


def crash(tmp: Path, kills: int, *, files: int = 40, edits: int = 10, seed: int = 1,
          timeout: int = 5) -> Crash:
    """Commit, start ``codedistiller refresh``, SIGKILL it after a random delay; ``kills`` times."""
    rng = random.Random(seed)
    home, reference = tmp / "home", tmp / "reference"
    upstream = Upstream(tmp / "upstream", files, seed)
    with Library.open(home) as lib:
        sid = sources.add(lib, upstream.url, name="cohorts").id
    expected: dict[str, dict[str, str]] = {}
    ref = Library.open(reference)
    sources.add(ref, upstream.url, name="cohorts")

    def remember() -> None:
        refresh(ref, validate=False)
        expected[upstream.commits[-1]] = digests(reference / "library.db", sid)

    remember()
    env = child_env(home)
    refresh_cmd = cli(home, "refresh", "--timeout", str(timeout), "--workers", "2")
    result = Crash()
    subprocess.run(refresh_cmd, env=env, cwd=str(ROOT), capture_output=True, timeout=600, check=True)
    # Calibrate on one uninterrupted refresh of a change like the ones to come: the kills land
    # anywhere from the process start to the end of such a refresh.
    upstream.change(edits)
    remember()
    started = time.monotonic()
    subprocess.run(refresh_cmd, env=env, cwd=str(ROOT), capture_output=True, timeout=600, check=True)
    result.calibration = time.monotonic() - started
    killed: list[int] = []
    db = home / "library.db"
    for n in range(kills):
        upstream.change(edits if n % 3 else 4 * edits)  # every third: a big change, a longer store
        remember()
        group = n % 2 == 1
        proc = subprocess.Popen(refresh_cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(0.0, result.calibration)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.append(proc.pid)
        deadline = time.monotonic() + 30  # generous: the dying group is reaped late under load
        while sandbox_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        stage = _stage(db, proc.pid) if proc.returncode < 0 else "finished"
        problems = library_problems(db)
        pin, active, pending = _source_state(db, sid)
        result.kills.append(Kill(delay=delay, group=group, stage=stage, pin=pin, problems=problems,
                                 consistent=pin in expected and active == expected[pin],
                                 stray=sandbox_processes(proc.pid), pending=pending))
    done = subprocess.run(refresh_cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=900)
    result.final_exit = done.returncode
    result.final_output = done.stdout + done.stderr
    result.final_problems = library_problems(db)
    pin, active, result.final_pending = _source_state(db, sid)
    result.final_consistent = pin == upstream.commits[-1] and active == expected[pin]
    result.snippets = len(active)
    ref.close()
    # The uninterrupted run: a fresh library distilled from the final commit in one go.
    fresh = tmp / "fresh"
    with Library.open(fresh) as lib:
        sources.add(lib, upstream.url, name="cohorts")
        refresh(lib, workers=2, settings=SandboxSettings(timeout=timeout))
    mine = _statuses(db, sid)
    theirs = _statuses(fresh / "library.db", sid)
    result.same_as_uninterrupted = mine == theirs
    if mine != theirs:
        diff = {k: (mine.get(k), theirs.get(k)) for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
        result.difference = json.dumps(dict(list(diff.items())[:5]))
    result.leftover_workdirs = leftover_workdirs(killed)
    return result


def _statuses(db: Path, source_id: str) -> dict[str, tuple[str, str]]:
    """id -> (code digest, validation status) of a source's active snippets."""
    conn = connect(db)
    try:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT id, code_sha256, validation_status FROM snippets WHERE source_id = ? "
            "AND lifecycle = 'active'", (source_id,))}
    finally:
        conn.close()
