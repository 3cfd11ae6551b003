"""The validation sandbox: run untrusted example code in a contained child process.

``validate(code)`` writes the code to ``snippet.py`` in a fresh temporary
working directory (also the child's ``HOME``; ``TMPDIR`` inside it) and runs it
there as ``__main__`` in a child process of the configured interpreter, never
in this process. The child gets an environment built from nothing (no tokens,
keys or credentials), resource limits, a wall-clock timeout that kills its
whole process group, and whatever isolation the OS gives, probed once:

- ``unshare`` (util-linux): own network, PID, mount, IPC and UTS namespaces
  (``unshare --net --pid --fork --kill-child --mount-proc ...``; with
  ``--map-root-user`` when not root). Inside, a setup program (run with
  ``python -I -S``, so files of the repository on ``PYTHONPATH`` cannot shadow
  the modules it imports while it still holds privileges) brings up the
  loopback, makes every mount read-only, hides home directories, ``/tmp``,
  ``/var/tmp`` and ``/run`` behind empty tmpfs (binding back read-only only the
  interpreter, its ``sys.path`` and ``python_path``), gives a minimal ``/dev``,
  and as root switches to a throwaway uid when the kept files allow it (so
  ``RLIMIT_NPROC`` counts this run only and file permissions apply); otherwise
  it drops every capability. It stays as the namespace's init, reaping orphans;
  when the snippet ends, the kernel kills whatever is left.
- ``bwrap`` (bubblewrap), when ``unshare`` is unusable: the same file-system
  view, network and PID namespaces, capabilities dropped.
- neither: rlimits only, said so; code that visibly fetches URLs is then
  skipped unrun rather than let onto the network.

The level actually achieved is recorded on every ``Validation.isolation``:
``<tool>[-net]+<feature>...+rlimits`` with tool ``unshare`` or ``bwrap``
(``-net``: no network), features ``pid`` (own PID namespace), ``fs``
(read-only, masked file system) and ``uid`` (throwaway unprivileged uid); or
``rlimits-only``. Resource limits are set by the setup program in the child,
not by a ``preexec_fn``, which Python documents as unsafe with threads
(callers run ``validate`` from a thread pool).

A run that fails for want of something the environment lacks is ``skipped``,
not ``failed``, with a one-line reason: ``needs network``, ``needs data file
'x.csv'``, ``needs program 'Rscript'``, ``needs GPU``, ``needs interactive
input``, ``needs a display``, and ``needs package X`` for a missing *top-level*
module (the environment lacks it, not the code). Evidence from the run's
traceback comes first; what the code visibly does (URL fetches, ``.cuda()``,
``device="cuda"``) decides only when the traceback names nothing more
specific. A missing submodule of an installed package (``No module named
'pkg.sub'``) or name (``cannot import name``) is ``failed``: the code does not
match the installed version. Notebook-style ``display(...)`` is provided (it
prints the repr), as in the Jupyter kernels the snippets are meant for.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
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

from ..model import Validation, utcnow

__all__ = [
    "ISOLATION_METHODS",
    "SandboxSettings",
    "isolates_network",
    "isolation_available",
    "validate",
]

ISOLATION_METHODS = ("auto", "unshare", "bwrap", "none")
TAIL_CHARS = 2000
SCRIPT_NAME = "snippet.py"
MIB = 1024 * 1024
WORKDIR_PREFIX = "codedistiller-sandbox-"  # + the pid of the process that made it + "-"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Throwaway uids for runs as root: one per run, so RLIMIT_NPROC counts that run only.
UID_BASE = 3_000_000
# Directories that would hide the system if masked (a HOME set to one of them is not masked).
SYSTEM_DIRS = frozenset({"/", "/usr", "/etc", "/var", "/opt", "/bin", "/sbin", "/lib", "/lib64",
                         "/srv", "/proc", "/sys", "/dev", "/boot", "/mnt", "/media"})


@dataclass
class SandboxSettings:
    """How the sandbox runs a snippet.

    ``cpu_seconds`` defaults to the timeout plus 5 s. ``max_processes``
    (``RLIMIT_NPROC``) is set only when the child runs under its own throwaway
    uid (``uid`` in the isolation): the limit counts every process of a uid,
    and root ignores it. Otherwise the PID namespace and the process-group kill
    are what end a fork bomb. The working directory holds at most
    ``4 * file_mb`` (``fs`` isolation). ``isolation`` picks the method
    (``auto``: the best this machine offers; ``none``: rlimits only).
    """

    interpreter: str = sys.executable
    timeout: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int | None = None
    file_mb: int = 64
    max_processes: int = 64
    output_limit: int = 64_000
    network: bool = False
    isolation: str = "auto"

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_METHODS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_METHODS)}; "
                             f"got {self.isolation!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


def isolates_network(isolation: str | None) -> bool:
    """True when a recorded isolation level says the child had no network."""
    return bool(isolation) and isolation.split("+", 1)[0].endswith("-net")


# ------------------------------------------------------------------ child programs
# Both run in the child, with only the standard library, on any Python >= 3.8.

# The setup program, run as ``python -I -S -c SETUP CONFIG RUNNER``: builds the
# namespace's view of the system, sets the resource limits, drops privileges and
# execs the runner. Exit code 125 and a "setup-error" event when it cannot.
_SETUP = r'''
import ctypes, json, os, resource, socket, struct, sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV = 1, 2, 4
MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
               "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
LIBC = None


def libc():
    global LIBC
    if LIBC is None:
        LIBC = ctypes.CDLL(None, use_errno=True)
        LIBC.syscall.restype = ctypes.c_long
    return LIBC


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          "mount %s" % target)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_options(path):
    flags = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                flags = 0
                for opt in parts[5].split(","):
                    flags |= MOUNT_FLAGS.get(opt, 0)
    return flags


def set_readonly(path, readonly, recursive=False):
    attr = MountAttr(ATTR_RDONLY if readonly else 0, 0 if readonly else ATTR_RDONLY, 0, 0)
    r = libc().syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(),
                       ctypes.c_uint(0x8000 if recursive else 0), ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr)))
    if r == 0:
        return
    if ctypes.get_errno() != 38:  # not ENOSYS: a real failure
        check(r, "mount_setattr %s" % path)
    targets = [path]
    if recursive:  # kernels before 5.12: remount every mount below, one by one
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        prefix = path.rstrip("/") + "/"
        targets += [p for p in points if p.startswith(prefix)]
    for target in targets:
        flags = MS_REMOUNT | MS_BIND | mount_options(target) | (MS_RDONLY if readonly else 0)
        mount(None, target, None, flags)


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def bind_from_fd(fd, target, isdir):
    if isdir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    mount("/proc/self/fd/%d" % fd, target, None, MS_BIND | MS_REC)


def build_fs(cfg):
    workdir, keep = cfg["workdir"], [p for p in cfg["keep"] if os.path.exists(p)]
    scratch = [m for m in cfg["scratch"] if os.path.isdir(m) and not os.path.islink(m)]
    homes = [m for m in cfg["homes"] if os.path.isdir(m) and not os.path.islink(m)]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    fds, isdir = {}, {}
    for p in keep:
        fds[p] = os.open(p, os.O_PATH | os.O_CLOEXEC)
        isdir[p] = os.path.isdir(p)
    contents = {}
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                contents[name] = f.read()
        elif os.path.isdir(path) and not os.path.islink(path):
            contents[name] = None
    devices = {}
    for name in ("null", "zero", "full", "random", "urandom"):
        if os.path.exists("/dev/" + name):
            devices[name] = os.open("/dev/" + name, os.O_PATH | os.O_CLOEXEC)
    set_readonly("/", True, recursive=True)

    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m")
    for name, fd in devices.items():
        bind_from_fd(fd, "/dev/" + name, False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, "/dev/" + name)
    os.mkdir("/dev/shm")
    size = "size=%dm" % cfg["scratch_mb"]
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777," + size)
    set_readonly("/dev", True)

    for m in scratch:
        if os.path.isdir(m):
            mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777," + size)
    for m in homes:
        if os.path.isdir(m):
            mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for p in keep:
        if any(under(p, m) for m in scratch + homes):
            bind_from_fd(fds[p], p, isdir[p])
            set_readonly(p, True)
    # The working directory becomes a size-limited tmpfs holding copies of what the
    # parent put there (read above, before /tmp was hidden): the host's disk stays safe.
    os.makedirs(workdir, exist_ok=True)
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700,size=%dm" % cfg["work_mb"])
    for name, data in contents.items():
        path = os.path.join(workdir, name)
        if data is None:
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(data)
    for m in homes:
        set_readonly(m, True)
    for fd in list(fds.values()) + list(devices.values()):
        os.close(fd)


def loopback_up():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return
    import fcntl
    try:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
    except OSError:
        pass
    finally:
        s.close()


def in_new_namespace(kind, host):
    try:
        return os.stat("/proc/self/ns/" + kind).st_ino != host[kind]
    except (OSError, KeyError):
        return False


def capabilities():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def drop_capabilities():
    if capabilities() == 0:
        return
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 63
    for cap in range(last + 1):
        libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc().prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))
    data = ctypes.create_string_buffer(24)
    check(libc().capset(header, data), "capset")
    if capabilities() != 0:
        raise OSError("capabilities remain after dropping them")


def chown_tree(top, uid):
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)
    os.lchown(top, uid, uid)


def can_run_as(uid, cfg):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            ok = (os.access(cfg["interpreter"], os.X_OK)
                  and all(os.access(p, os.R_OK) for p in cfg["keep"] if os.path.exists(p))
                  and os.access(cfg["workdir"], os.W_OK | os.X_OK))
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    return os.waitpid(pid, 0)[1] == 0


def set_limits(lim, own_uid):
    failed = []
    wanted = [("RLIMIT_AS", lim["memory"]), ("RLIMIT_CPU", lim["cpu"]),
              ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_CORE", 0)]
    if own_uid:  # otherwise it would count every process of the user, not of this run
        wanted.append(("RLIMIT_NPROC", lim["nproc"]))
    for name, value in wanted:
        res = getattr(resource, name, None)
        if res is None:
            failed.append(name)
            continue
        hard_now = resource.getrlimit(res)[1]
        hard = value + 1 if name == "RLIMIT_CPU" else value
        if hard_now != resource.RLIM_INFINITY:
            hard = min(hard, hard_now)
        try:
            resource.setrlimit(res, (min(value, hard), hard))
        except (ValueError, OSError):
            failed.append(name)
    return failed


def init_loop(child, emit, lifeline):
    """Reap every child; end with the snippet, or at once if the parent process died."""
    import select, signal
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    status = None
    while status is None:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == child:
                status = st
                break
        if status is not None:
            break
        ready = select.select([lifeline, wake_r], [], [])[0]
        if lifeline in ready and not os.read(lifeline, 1):
            os._exit(137)  # the parent is gone: dying takes the namespace with it
        if wake_r in ready:
            os.read(wake_r, 512)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        emit({"event": "exit", "signal": sig})
        os._exit(128 + sig)
    emit({"event": "exit", "code": os.WEXITSTATUS(status)})
    os._exit(os.WEXITSTATUS(status))


def watchdog(lifeline, report_fd):
    """Without a PID namespace: kill the process group if the parent process dies.

    A grandchild, so that the snippet's own os.wait() never sees it.
    """
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return
    if os.fork():
        os._exit(0)
    os.chdir("/")  # not one of the processes the parent sweeps out of the working directory
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # hold none of the output pipes open
    os.close(report_fd)
    try:
        os.read(lifeline, 1)
    except OSError:
        pass
    os.killpg(0, 9)
    os._exit(0)


def main():
    cfg = json.loads(sys.argv[1])
    runner = sys.argv[2]
    fd = cfg["report_fd"]
    lifeline = cfg["lifeline"]

    def emit(event):
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
        except OSError:
            pass

    try:
        features = []
        if in_new_namespace("net", cfg["host_ns"]):
            loopback_up()
            features.append("net")
        if in_new_namespace("pid", cfg["host_ns"]):
            features.append("pid")
        if cfg["fs"]:
            build_fs(cfg)
            features.append("fs")
        os.chdir(cfg["workdir"])
        if os.getpid() == 1:
            # Stay as the namespace's init: reap orphans, report how the snippet ended.
            child = os.fork()
            if child:
                try:
                    drop_capabilities()
                except OSError:
                    pass
                init_loop(child, emit, lifeline)
        elif cfg["watchdog"]:
            watchdog(lifeline, fd)
        os.close(lifeline)
        uid = cfg["uid"]
        if uid is not None and os.geteuid() == 0:
            chown_tree(cfg["workdir"], uid)
            if can_run_as(uid, cfg):
                features.append("uid")
            else:
                chown_tree(cfg["workdir"], 0)
                uid = None
        if os.geteuid() == 0 or capabilities():
            for cap in range(64):
                libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: no capability after exec
        failed = set_limits(cfg["limits"], "uid" in features)
        if "uid" in features:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        else:
            drop_capabilities()
        libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        emit({"event": "setup", "features": features, "rlimits_failed": failed})
        interpreter = cfg["interpreter"]
        os.execv(interpreter, [interpreter, "-c", runner, json.dumps(cfg["run"])])
    except BaseException as exc:
        emit({"event": "setup-error", "error": "%s: %s" % (type(exc).__name__, exc)})
        os._exit(125)


main()
'''

# The runner, exec'd by the setup program: runs the snippet as ``__main__`` and
# reports the Python version and the distributions the snippet imported.
_RUNNER = r'''
import json, os, sys


def stdlib_names():
    names = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
    if names - set(sys.builtin_module_names):
        return names
    import sysconfig
    std = [os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")]
    for name, module in list(sys.modules.items()):
        path = os.path.realpath(getattr(module, "__file__", None) or "")
        if path and "site-packages" not in path and any(path.startswith(s) for s in std):
            names.add(name.partition(".")[0])
    return names


def distribution_map(metadata):
    if hasattr(metadata, "packages_distributions"):
        return metadata.packages_distributions()
    mapping = {}
    for dist in metadata.distributions():
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            tops = {str(f).split("/")[0].split(".")[0] for f in dist.files or ()}
        for top in tops:
            mapping.setdefault(top, []).append(dist.metadata["Name"])
    return mapping


def direct_imports(source):
    import ast
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def is_local(name, roots):
    module = sys.modules.get(name)
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", ())), "")
    where = os.path.realpath(where) if where else ""
    return bool(where) and any(where.startswith(root + os.sep) for root in roots)


def imported_distributions(baseline, direct, roots):
    """Distributions of what the snippet imports itself; when it imports local code
    (the source's checkout), of everything that code pulled in as well."""
    present = {name.partition(".")[0] for name in list(sys.modules)}
    new = {name.partition(".")[0] for name in list(sys.modules) if name not in baseline}
    ignore = stdlib_names() | {"__main__"}
    direct = (direct & present) - ignore
    tops = new - ignore if any(is_local(n, roots) for n in direct) else direct
    if not tops:
        return {}
    from importlib import metadata
    mapping = distribution_map(metadata)
    found = {}
    for top in sorted(tops):
        for dist in mapping.get(top, ()):
            try:
                found[dist] = metadata.version(dist)
            except Exception:
                pass
    return found


def missing_requirements(names):
    if not names:
        return []
    from importlib import metadata
    missing = []
    for name in names:
        try:
            metadata.version(name)
        except Exception:
            missing.append(name)
    return missing


def main():
    cfg = json.loads(sys.argv[1])
    fd = cfg["report_fd"]
    try:
        os.set_inheritable(fd, False)
    except OSError:
        fd = -1

    def emit(event):
        if fd >= 0:
            try:
                os.write(fd, (json.dumps(event) + "\n").encode())
            except OSError:
                pass

    import platform, traceback, types
    emit({"event": "start", "python_version": platform.python_version(),
          "missing": missing_requirements(cfg["requirements"])})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    script = cfg["script"]
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)
    module = types.ModuleType("__main__")
    module.__file__ = script
    module.__builtins__ = __builtins__
    import builtins
    if not hasattr(builtins, "display"):  # Jupyter's builtin, which notebook examples use
        def display(*objs, **kwargs):
            for obj in objs:
                print(repr(obj))
        builtins.display = display
    sys.modules["__main__"] = module
    baseline = set(sys.modules)

    roots = [os.path.realpath(p) for p in cfg["local"]]
    source = None

    def finish():
        try:
            direct = direct_imports(source) if source is not None else set()
            packages = imported_distributions(baseline, direct, roots)
        except Exception:
            packages = {}
        emit({"event": "end", "packages": packages})

    status = 0
    try:
        with open(script, encoding="utf-8") as f:
            source = f.read()
        exec(compile(source, script, "exec", dont_inherit=True), module.__dict__)
    except SystemExit:
        finish()
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        status = 1
    finish()
    sys.exit(status)


main()
'''

_INFO = r'''
import json, os, platform, sys
print(json.dumps({
    "version": platform.python_version(),
    "executable": sys.executable,
    "paths": [sys.prefix, sys.base_prefix, sys.exec_prefix,
              getattr(sys, "base_exec_prefix", sys.exec_prefix),
              os.path.dirname(os.path.realpath(sys.executable))] + [p for p in sys.path if p],
}))
'''


# ------------------------------------------------------------------ probes (cached)

@dataclass(frozen=True)
class _Plan:
    """How to wrap the child: the tool, its flags, and what the setup program should do."""

    tool: str | None  # "unshare", "bwrap" or None
    flags: tuple[str, ...] = ()
    fs: bool = False  # the setup program builds the file-system view (unshare)
    uid: bool = False  # try a throwaway uid (root only)
    wrapper_features: tuple[str, ...] = ()  # what the tool itself guarantees (bwrap: fs)


@dataclass
class _Info:
    version: str
    executable: str
    paths: list[str] = field(default_factory=list)


_lock = threading.Lock()  # guards the caches below
_parse_lock = threading.Lock()
_probe_lock = threading.Lock()  # one probe at a time, so each method is probed once
_plans: dict[str, tuple[_Plan, tuple[str, ...]]] = {}
_infos: dict[str, _Info] = {}
_uids = itertools.count()


def _host_namespaces() -> dict[str, int]:
    found = {}
    for kind in ("net", "pid"):
        try:
            found[kind] = os.stat(f"/proc/self/ns/{kind}").st_ino
        except OSError:
            pass
    return found


def _candidates(method: str) -> list[_Plan]:
    plans: list[_Plan] = []
    if method in ("auto", "unshare") and shutil.which("unshare") and sys.platform == "linux":
        base = ("--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts")
        variants = [(), ("--map-root-user",)] if os.geteuid() == 0 else [("--map-root-user",)]
        for extra in variants:
            for fs in (True, False):
                plans.append(_Plan("unshare", extra + base, fs=fs, uid=os.geteuid() == 0))
    if method in ("auto", "bwrap") and shutil.which("bwrap"):
        plans.append(_Plan("bwrap", wrapper_features=("fs",)))
    if method in ("auto", "none"):
        plans.append(_Plan(None, uid=os.geteuid() == 0))
    return plans


def _describe(tool: str | None, features: Sequence[str], rlimits: bool) -> str:
    parts = [tool + ("-net" if "net" in features else "")] if tool else []
    parts += [f for f in ("pid", "fs", "uid") if f in features and (tool or f == "uid")]
    if rlimits:
        parts.append("rlimits")
    if parts == ["rlimits"]:
        return "rlimits-only"
    return "+".join(parts) or "none"


def _plan(method: str) -> tuple[_Plan, tuple[str, ...]]:
    """The first plan of ``method`` that runs a trivial snippet here, and its features."""
    with _probe_lock:
        with _lock:
            if method in _plans:
                return _plans[method]
        if not _plans:
            _remove_orphaned_workdirs()
        chosen = (_Plan(None), ())
        settings = SandboxSettings(timeout=30.0)
        interpreter = os.path.abspath(settings.interpreter)
        info = _interpreter(interpreter)
        for plan in _candidates(method):
            try:
                run = _execute("print('sandbox-ok')", plan, settings, interpreter,
                               info if isinstance(info, _Info) else None, (), ())
            except OSError:
                continue
            if run.returncode == 0 and b"sandbox-ok" in run.stdout and run.setup is not None:
                if plan.tool is not None and "net" not in run.features:
                    continue  # a namespace tool that did not cut the network is not worth it
                chosen = (plan, tuple(run.features) + plan.wrapper_features)
                break
        with _lock:
            _plans[method] = chosen
        return chosen


def isolation_available(method: str = "auto") -> str:
    """What isolation this machine gives a snippet, probed once by running one through it.

    E.g. ``"unshare-net+pid+fs+uid"``, ``"bwrap-net+pid+fs"``, ``"rlimits-only"``.
    """
    if method not in ISOLATION_METHODS:
        raise ValueError(f"isolation method must be one of {', '.join(ISOLATION_METHODS)}")
    plan, features = _plan(method)
    return _describe(plan.tool, features, rlimits=not plan.tool)


def _interpreter(path: str) -> _Info | str:
    """Facts about an interpreter (cached), or why it cannot be run."""
    with _lock:
        if path in _infos:
            return _infos[path]
    try:
        out = subprocess.run([path, "-I", "-c", _INFO], capture_output=True, timeout=60,
                             env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}, check=False,
                             stdin=subprocess.DEVNULL)
        data = json.loads(out.stdout) if out.returncode == 0 else None
        info: _Info | str = (_Info(data["version"], data["executable"], data["paths"])
                             if data else f"exit code {out.returncode}: "
                             f"{out.stderr.decode(errors='replace').strip()[-200:]}")
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        info = f"{type(exc).__name__}: {exc}"
    if isinstance(info, str):
        return info  # not cached: the next call tries again
    with _lock:
        return _infos.setdefault(path, info)


# ------------------------------------------------------------------ running

@dataclass
class _Run:
    returncode: int
    timed_out: bool
    duration: float
    stdout: bytes
    stderr: bytes
    setup: dict | None = None
    setup_error: str | None = None
    start: dict | None = None
    end: dict | None = None
    exit: dict | None = None

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


def _keep(info: _Info | None, interpreter: str, python_path: Sequence[str]) -> list[str]:
    paths = [interpreter, os.path.realpath(interpreter)]
    if info is not None:
        paths += [info.executable, *info.paths]
    paths += [os.path.abspath(p) for p in python_path]
    real = [os.path.realpath(p) for p in paths if p and os.path.exists(p)]
    return _outermost(real)


def _next_uid() -> int:
    return UID_BASE + (os.getpid() % 4096) * 256 + next(_uids) % 256


def _command(plan: _Plan, settings: SandboxSettings, workdir: str, keep: list[str],
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


def _execute(code: str, plan: _Plan, settings: SandboxSettings, interpreter: str,
             info: _Info | None, python_path: Sequence[str], requirements: Sequence[str]) -> _Run:
    """Run ``code`` once under ``plan``; the working directory is gone when this returns."""
    workdir = os.path.realpath(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    try:
        script = os.path.join(workdir, SCRIPT_NAME)
        with open(script, "wb") as f:
            f.write(code.encode("utf-8", errors="replace"))
        os.mkdir(os.path.join(workdir, "tmp"))
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
            "host_ns": _host_namespaces(),
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
            "run": {"report_fd": report_w, "script": script,
                    "requirements": list(requirements),
                    "local": [workdir, *(os.path.realpath(p) for p in python_path)]},
        }
        cmd = _command(plan, settings, workdir, keep, scratch, homes)
        cmd += [interpreter, "-I", "-S", "-c", _SETUP, json.dumps(cfg), _RUNNER]
        env = _environment(workdir, python_path, interpreter)
        try:
            return _supervise(cmd, env, workdir, report_r, report_w, lifeline_r, settings,
                              sweep=plan.tool is None)
        finally:
            os.close(report_r)
            os.close(lifeline_w)
    finally:
        _remove_tree(workdir)


def _supervise(cmd: list[str], env: dict[str, str], workdir: str, report_r: int, report_w: int,
               lifeline_r: int, settings: SandboxSettings, sweep: bool) -> _Run:
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
    timed_out = False
    ended: float | None = None
    try:
        while True:
            now = time.monotonic()
            if ended is None and _exited(proc):
                ended = now
                _kill_group(proc.pid)  # leftovers; the leader is a zombie, so its pgid is ours
                if sweep:
                    _sweep(workdir)
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
                buf += data
                cap = limit if fd != report_r else MIB
                if len(buf) > 2 * cap:
                    del buf[:-cap]
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
    run = _Run(returncode=returncode, timed_out=timed_out, duration=duration,
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
        elif kind == "start" and run.start is None:
            run.start = event
        elif kind == "end":
            run.end = event
        elif kind == "exit":
            run.exit = event
    return run


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


def _remove_orphaned_workdirs() -> None:
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


# ------------------------------------------------------------------ judging the outcome

_URL = re.compile(r"^(?:https?|ftps?|s3|gs)://", re.I)
_FETCHERS = frozenset({"urlopen", "urlretrieve", "load_dataset", "download_url",
                       "HTTPConnection", "HTTPSConnection", "create_connection"})
_WEB_MODULES = frozenset({"requests", "httpx", "pooch", "wget", "urllib3", "aiohttp", "ftplib"})
_GPU_MODULES = frozenset({"cupy", "cudf", "cuml", "pycuda", "numba.cuda", "rapids_singlecell"})
_NETWORK_ERRORS = re.compile(
    r"ConnectionError|URLError|gaierror|Network is unreachable|Name or service not known|"
    r"Temporary failure in name resolution|No address associated with hostname|"
    r"NameResolutionError|NewConnectionError|Failed to establish a new connection|"
    r"MaxRetryError|ConnectTimeout|Could not resolve host|nodename nor servname|"
    r"socket\.timeout|ProxyError")
_NETWORK_TRACES = re.compile(  # anywhere in the traceback, e.g. a chained cause
    r"Network is unreachable|Temporary failure in name resolution|Name or service not known|"
    r"gaierror|NameResolutionError|Failed to establish a new connection")
_GPU_ERRORS = re.compile(
    r"CUDA|cuda runtime|NVIDIA driver|no CUDA-capable device|nvidia-smi|"
    r"Torch not compiled with CUDA|GPU.*not available|No GPU|libcuda|cudaGetDevice|"
    r"Unknown backend:? '?gpu")
_DISPLAY_ERRORS = re.compile(
    r"no display name|cannot connect to X server|couldn't connect to display|"
    r"could not connect to display|\$DISPLAY|TclError")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|"
                             r"Failure|Timeout|Refused))(?::\s*(.*))?$")


def _static_needs(code: str) -> set[str]:
    """What the code visibly needs: {"network", "gpu", "input"} (evidence, not proof)."""
    needs: set[str] = set()
    try:
        with _parse_lock:  # CPython 3.11's AST builder is not thread-safe (SystemError: "AST
            tree = ast.parse(code)  # constructor recursion depth mismatch" under parallel calls)
    except (SyntaxError, ValueError, RecursionError):
        return needs
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            args = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                   and _URL.match(a.value) for a in args) and name not in ("print", "format"):
                needs.add("network")
            if name in _FETCHERS or name.startswith("fetch_"):
                needs.add("network")
            elif isinstance(func, ast.Attribute):
                base = func.value
                owner = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                if owner in _WEB_MODULES:
                    needs.add("network")
            if name in ("input", "getpass"):
                needs.add("input")
            if name == "cuda":
                needs.add("gpu")
            for k in node.keywords:
                if k.arg == "download" and isinstance(k.value, ast.Constant) and k.value.value:
                    needs.add("network")
                if (k.arg in ("device", "device_map") and isinstance(k.value, ast.Constant)
                        and isinstance(k.value.value, str)
                        and k.value.value.lower().startswith(("cuda", "gpu"))):
                    needs.add("gpu")
            if name in ("to", "device") and any(
                    isinstance(a, ast.Constant) and isinstance(a.value, str)
                    and a.value.lower().startswith("cuda") for a in node.args):
                needs.add("gpu")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            if any(n in _GPU_MODULES or n.split(".")[0] in _GPU_MODULES for n in names):
                needs.add("gpu")
    return needs


def _final_exception(stderr: str) -> str:
    """The last ``SomeError: message`` line of a traceback, else the last unindented line."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    for line in reversed(lines):
        if not line[0].isspace() and not line.startswith("Traceback"):
            return line
    return ""


def _skip_reason(stderr: str, static: set[str], timed_out: bool,
                 missing: Sequence[str]) -> str | None:
    """Why a run that did not pass is the environment's doing, or None if it is the code's.

    Evidence from the run comes first; what the code visibly needs (``static``)
    decides only when the run itself names nothing more specific.
    """
    final = _final_exception(stderr)
    if _GPU_ERRORS.search(final):
        return "needs GPU"
    if _NETWORK_ERRORS.search(final) or _NETWORK_TRACES.search(stderr):
        return "needs network"
    if timed_out:
        return "needs network" if "network" in static else None
    m = re.match(r"(?:ModuleNotFoundError|ImportError): No module named '([^']+)'", final)
    if m:
        name = m.group(1)
        if "." in name:
            return None  # the package is there, its submodule is not: the code is out of date
        from .imports import normalise

        want = normalise(name)
        for dist in missing:
            if normalise(dist) == want:
                return f"needs package {dist}"
        if len(missing) == 1:
            return f"needs package {missing[0]}"
        return f"needs package {name}"
    m = re.match(r"(?:FileNotFoundError|IOError|OSError):.*?(?:No such file or directory|"
                 r"does not exist)[:\s]*['\"]?([^'\"]*)['\"]?", final)
    if m or final.startswith("FileNotFoundError"):
        name = (m.group(1) if m else "") or _quoted(final)
        if "_execute_child" in stderr or "child_exception_type" in stderr:
            return f"needs program '{name}'" if name else "needs a program that is not installed"
        return f"needs data file '{name}'" if name else "needs a data file"
    if final.startswith("EOFError") or ("input" in static and "EOF when reading" in stderr):
        return "needs interactive input"
    if _DISPLAY_ERRORS.search(final):
        return "needs a display"
    if "gpu" in static:
        return "needs GPU"
    if "network" in static:
        return "needs network"
    return None


def _quoted(text: str) -> str:
    m = re.findall(r"'([^']+)'|\"([^\"]+)\"", text)
    return next((a or b for a, b in reversed(m)), "")


def _tail(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")[-TAIL_CHARS:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ------------------------------------------------------------------ the entry point

def validate(code: str, *, python_path: Sequence[str] = (),
             settings: SandboxSettings | None = None,
             requirements: Mapping[str, str | None] | None = None) -> Validation:
    """Run ``code`` in the sandbox and say how it went; never runs it in this process.

    ``python_path`` entries are importable by the code (the source's checkout);
    ``requirements`` (distribution name -> version) sharpen "needs package"
    reasons. Thread-safe: call it from as many threads as you like.
    """
    settings = settings or SandboxSettings()
    when = utcnow()
    interpreter = os.path.abspath(shutil.which(settings.interpreter) or settings.interpreter)
    info = _interpreter(interpreter)
    if isinstance(info, str):
        return Validation(status="skipped", reason=f"interpreter {interpreter} cannot run: {info}",
                          when=when, duration=0.0, interpreter=interpreter)
    plan, features = _plan(settings.isolation)
    static = _static_needs(code)
    if "network" in static and not settings.network and "net" not in features:
        return Validation(status="skipped", reason="needs network (not run: this machine "
                          "cannot cut the network)", when=when, duration=0.0,
                          interpreter=interpreter, python_version=info.version,
                          isolation=_describe(plan.tool, features, rlimits=True))
    run = _execute(code, plan, settings, interpreter, info, python_path, list(requirements or ()))
    achieved = list(run.features) + [f for f in plan.wrapper_features if run.setup is not None]
    v = Validation(
        status="failed",
        when=when,
        duration=round(run.duration, 3),
        interpreter=interpreter,
        python_version=(run.start or {}).get("python_version") or info.version,
        packages=dict((run.end or {}).get("packages") or {}),
        isolation=_describe(plan.tool, achieved, run.rlimits),
        exit_code=run.returncode,
        stdout_tail=_tail(run.stdout),
        stderr_tail=_tail(run.stderr),
    )
    if run.returncode > 128 and not run.timed_out:
        # The namespace's init (or bwrap) exits 128+N when the snippet died of signal N.
        said = (run.exit or {}).get("signal")
        if plan.tool == "bwrap" or said == run.returncode - 128:
            v.exit_code = -(run.returncode - 128)
    stderr = run.stderr.decode("utf-8", errors="replace")
    if (run.setup is None or run.start is None) and not run.timed_out:
        v.status = "skipped"
        what = run.setup_error or _final_exception(stderr) or f"exit code {run.returncode}"
        stage = "sandbox setup failed" if run.setup is None else "the interpreter did not start"
        v.reason = f"{stage}: {what}"[:300]
        return v
    if run.timed_out:
        v.status, v.reason = "timeout", f"exceeded the {settings.timeout:g} s wall-clock limit"
    elif v.exit_code == 0:
        v.status = "passed"
        return v
    elif v.exit_code == -signal.SIGXCPU:
        cpu = settings.cpu_seconds or int(settings.timeout) + 5
        v.status, v.reason = "timeout", f"exceeded the CPU time limit ({cpu} s)"
    elif v.exit_code == -signal.SIGXFSZ:
        v.reason = f"wrote a file over the {settings.file_mb} MB limit"
    elif v.exit_code is not None and v.exit_code < 0:
        v.reason = f"killed by {_signal_name(-v.exit_code)}"
    else:
        v.reason = _final_exception(stderr)[:300] or f"exit code {v.exit_code}"
    missing = list((run.start or {}).get("missing") or [])
    why = _skip_reason(stderr, static, run.timed_out, missing)
    if why:
        v.status, v.reason = "skipped", why
    return v
