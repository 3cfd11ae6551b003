"""Supervision: prepare a working directory, start the wrapped child, watch it, clean up after it."""

from __future__ import annotations

import itertools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .. import capture
from .probe import Info, Plan, host_namespaces
from .programs import program
from .settings import (
    MIB,
    REPORT_LIMIT,
    SCRIPT_NAME,
    SYSTEM_DIRS,
    SYSTEM_PATH,
    TAIL_CHARS,
    UID_BASE,
    WORKDIR_PREFIX,
    SandboxSettings,
)
from .zygote import processes_of, rss_of

_uids = itertools.count()
_uid_lock = threading.Lock()
_uids_in_use: set[int | None] = set()


@dataclass
class Run:
    returncode: int
    timed_out: bool
    duration: float
    stdout: bytes
    stderr: bytes
    setup: dict | None = None
    setup_error: str | None = None
    exit: dict | None = None
    captured: list = field(default_factory=list)
    memory: bool = False  # killed at the memory bound over its whole process tree
    fetched: dict[str, bytes] = field(default_factory=dict)  # execute(fetch=...): files it left

    @property
    def features(self) -> list[str]:
        return list((self.setup or {}).get("features", []))

    @property
    def rlimits(self) -> bool:
        return self.setup is not None and not self.setup.get("rlimits_failed")


def _environment(workdir: str, python_path: Sequence[str], interpreter: str) -> dict[str, str]:
    """The child's whole environment: built from nothing, so no secret can leak in."""
    env = {
        "PATH": os.path.dirname(interpreter) + os.pathsep + SYSTEM_PATH,
        "HOME": workdir,
        "TMPDIR": os.path.join(workdir, "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(os.path.realpath(p) for p in python_path)
    return env


def _outermost(paths: list[str]) -> list[str]:
    kept: list[str] = []
    for p in sorted(set(paths), key=len):
        if p != "/" and not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def _masks() -> tuple[list[str], list[str]]:
    """(scratch, homes): directories hidden behind empty tmpfs in the child."""
    import pwd

    scratch = {"/tmp", "/var/tmp", "/run", tempfile.gettempdir()}
    homes = {"/root", "/home", os.path.expanduser("~")}
    try:
        homes.add(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        pass

    def real(paths: set[str]) -> set[str]:
        found = {os.path.realpath(p) for p in paths if p and os.path.isdir(p)}
        return found - SYSTEM_DIRS

    scratch, homes = real(scratch), real(homes)
    outer = _outermost(list(scratch | homes))  # a mask inside another is hidden already
    return [m for m in outer if m in scratch], [m for m in outer if m not in scratch]


def _keep(info: Info | None, interpreter: str, python_path: Sequence[str]) -> list[str]:
    paths = [interpreter, os.path.realpath(interpreter)]
    if info is not None:
        paths += [info.executable, *info.paths]
    paths += [os.path.abspath(p) for p in python_path]
    real = [os.path.realpath(p) for p in paths if p and os.path.exists(p)]
    return _outermost(real)


def _next_uid() -> int:
    """A throwaway uid that no run of this process is using now; hand it back with ``_release_uid``."""
    with _uid_lock:
        for _ in range(256):
            uid = UID_BASE + (os.getpid() % 4096) * 256 + next(_uids) % 256
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid
    raise RuntimeError("no free throwaway uid: 256 runs at once in this process")


def _release_uid(uid: int | None) -> None:
    """``uid``'s run has ended and nothing of it is left running: another run may have it."""
    with _uid_lock:
        _uids_in_use.discard(uid)


def _command(plan: Plan, settings: SandboxSettings, workdir: str, keep: list[str],
             scratch: list[str], homes: list[str]) -> list[str]:
    """The wrapper in front of the setup program (nothing for rlimits only)."""
    if plan.tool == "unshare":
        net = () if settings.network else ("--net",)
        return ["unshare", *net, *plan.flags, "--"]
    if plan.tool == "bwrap":
        cmd = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not settings.network:
            cmd.append("--unshare-net")
        cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for m in scratch + homes:
            cmd += ["--tmpfs", m]
        for p in keep:
            if any(p == m or p.startswith(m + "/") for m in scratch + homes):
                cmd += ["--ro-bind", p, p]
        cmd += ["--bind", workdir, workdir, "--chdir", workdir]
        if os.geteuid() == 0:
            cmd += ["--cap-drop", "ALL"]
        return [*cmd, "--"]
    return []


def execute(code: str, plan: Plan, settings: SandboxSettings, interpreter: str,
             info: Info | None, python_path: Sequence[str], *, seed: Mapping[str, bytes] | None = None,
             fetch: Mapping[str, int] | None = None) -> Run:
    """Run ``code`` once under ``plan``; the working directory is gone when this returns.

    ``seed``: files (path relative to the working directory -> content) put there before the
    run, each the run's own copy. ``fetch``: names (in the capture directory -> most bytes) of
    files the run leaves to be read back into ``Run.fetched`` (for trusted builder programs).
    """
    workdir = os.path.realpath(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    try:
        script = os.path.join(workdir, SCRIPT_NAME)
        with open(script, "wb") as f:
            f.write(code.encode("utf-8", errors="replace"))
        os.mkdir(os.path.join(workdir, "tmp"))
        os.mkdir(os.path.join(workdir, capture.DIRNAME))
        for rel, data in (seed or {}).items():
            path = os.path.join(workdir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        cap = capture.settings(workdir)
        if fetch:
            cap["names"] = [*cap["names"], *fetch]
            cap["cap"] = max(cap["cap"], *fetch.values())
        keep = _keep(info, interpreter, python_path)
        scratch, homes = _masks()
        cpu = settings.cpu_seconds or int(settings.timeout) + 5
        report_r, report_w = os.pipe()
        # The child holds the read end; when this process dies, the child sees EOF and ends.
        lifeline_r, lifeline_w = os.pipe()
        cfg = {
            "report_fd": report_w,
            "lifeline": lifeline_r,
            "watchdog": plan.tool is None,
            "host_ns": host_namespaces(),
            "workdir": workdir,
            "interpreter": interpreter,
            "keep": keep,
            "scratch": scratch,
            "homes": homes,
            "scratch_mb": max(settings.file_mb, 16),
            "work_mb": max(4 * settings.file_mb, 16),
            "fs": plan.fs,
            "uid": _next_uid() if plan.uid else None,
            "limits": {"memory": settings.memory_mb * MIB, "cpu": cpu,
                       "fsize": settings.file_mb * MIB, "nproc": settings.max_processes},
            "run": {"script": script, "capture": cap},
        }
        cmd = _command(plan, settings, workdir, keep, scratch, homes)
        cmd += [interpreter, "-I", "-S", "-c", program("setup"), json.dumps(cfg), program("runner")]
        env = _environment(workdir, python_path, interpreter)
        try:
            run = _supervise(cmd, env, workdir, report_r, report_w, lifeline_r, settings,
                             sweep=plan.tool is None, uid=cfg["uid"])
            run.captured = capture.collect(os.path.join(workdir, capture.DIRNAME))
            if fetch:
                run.fetched = capture.fetch(os.path.join(workdir, capture.DIRNAME), fetch)
            return run
        finally:
            os.close(report_r)
            os.close(lifeline_w)
            _release_uid(cfg["uid"])  # its namespace, and all it ran, is gone
    finally:
        _remove_tree(workdir)


def _supervise(cmd: list[str], env: dict[str, str], workdir: str, report_r: int, report_w: int,
               lifeline_r: int, settings: SandboxSettings, sweep: bool, uid: int | None = None) -> Run:
    """Start the child, keep the tails of its output, enforce the wall clock, clean up."""
    limit = max(settings.output_limit, TAIL_CHARS * 4)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(report_w, lifeline_r), start_new_session=True)
    finally:
        os.close(report_w)
        os.close(lifeline_r)
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray(), report_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except OSError:
            pidfd = None
    deadline = started + settings.timeout
    timed_out = memory = False
    next_memory_check = started
    ended: float | None = None
    try:
        while True:
            now = time.monotonic()
            if ended is None and _exited(proc):
                ended = now
                _kill_group(proc.pid)  # leftovers; the leader is a zombie, so its pgid is ours
                if sweep:
                    _sweep(workdir)
            if ended is None and now >= next_memory_check:
                next_memory_check = now + 0.25
                tree = _tree(proc.pid, uid)
                if rss_of(tree) > settings.tree_bound:  # the bound over the whole tree
                    memory = True
                    _kill_group(proc.pid)
                    for pid in tree:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    if sweep:
                        _sweep(workdir)
                    deadline = float("inf")
            if ended is None and now >= deadline:
                timed_out = True
                _kill_group(proc.pid)
                if sweep:
                    _sweep(workdir)
                deadline = float("inf")
            open_pipes = [fd for fd in buffers if fd in sel.get_map()]
            if ended is not None and (not open_pipes or now - ended > 2.0):
                break
            wait = 0.5 if pidfd is None else 5.0
            if ended is None:
                wait = min(wait, max(deadline - now, 0.0))
            else:
                wait = min(0.1, max(ended + 2.0 - now, 0.0))
            for key, _ in sel.select(timeout=wait):
                fd = key.fd
                if fd == pidfd:
                    sel.unregister(pidfd)
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(fd)
                    continue
                buf = buffers[fd]
                if fd == report_r:
                    # Only trusted code writes here, a few hundred bytes: keep the FIRST bytes,
                    # so nothing written later can push the real events out.
                    buf += data[:max(REPORT_LIMIT - len(buf), 0)]
                    continue
                buf += data
                if len(buf) > 2 * limit:
                    del buf[:-limit]
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if ended is None:
            _kill_group(proc.pid)
        returncode = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    duration = (ended or time.monotonic()) - started
    run = Run(returncode=returncode, timed_out=timed_out, duration=duration, memory=memory,
               stdout=bytes(buffers[out_fd][-limit:]), stderr=bytes(buffers[err_fd][-limit:]))
    for line in bytes(buffers[report_r]).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "setup" and run.setup is None:  # the first one: the child cannot rewrite it
            run.setup = event
        elif kind == "setup-error" and run.setup is None:
            run.setup_error = str(event.get("error"))
        elif kind == "exit" and run.exit is None:
            run.exit = event
    return run


def _tree(leader: int, uid: int | None) -> list[int]:
    """The run's processes: those of its throwaway uid, else those of its session."""
    if uid is not None:
        return processes_of(uid)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                if int(fields[3]) == leader:  # the session id
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child ended, without reaping it (so its process group id stays reserved)."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep(workdir: str) -> None:
    """Kill processes that left the process group but still work in ``workdir``."""
    prefix = workdir.rstrip("/") + "/"
    for _ in range(3):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == workdir or cwd.startswith(prefix):
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.05)


def remove_orphaned_workdirs() -> None:
    """Remove working directories left by processes killed in the middle of a run."""
    top = tempfile.gettempdir()
    try:
        names = os.listdir(top)
    except OSError:
        return
    for name in names:
        pid = name[len(WORKDIR_PREFIX):].partition("-")[0]
        if not name.startswith(WORKDIR_PREFIX) or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its maker (or a process reusing its pid) is alive: leave it
        except ProcessLookupError:
            _remove_tree(os.path.join(top, name))
        except OSError:
            continue


def _remove_tree(path: str) -> None:
    """Remove the working directory, whatever permissions the child left on it.

    ``shutil.rmtree`` never follows symbolic links out of the tree; directories
    the child made unreadable or unwritable get their owner bits back first.
    """

    def fix(func, target, _exc) -> None:  # type: ignore[no-untyped-def]
        for p in (os.path.dirname(target), target):
            try:
                if stat.S_ISDIR(os.lstat(p).st_mode):
                    os.chmod(p, stat.S_IRWXU)
            except OSError:
                pass
        try:
            func(target)
        except OSError:
            pass

    for _ in range(4):
        if not os.path.lexists(path):
            return
        try:
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=fix)
            else:
                shutil.rmtree(path, onerror=fix)
        except OSError:
            time.sleep(0.05)
