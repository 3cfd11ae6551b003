"""Probes, cached per process: which isolation this machine gives, and facts about interpreters.

The one place that asks an interpreter about itself (its Python version, its paths, the
versions of distributions installed in it): the sandbox, refresh (stale checks), the LLM
pass (what the prompt says is installed) and the cluster (a worker's environment) all ask here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .programs import program
from .settings import ISOLATION_METHODS, SYSTEM_PATH, SandboxSettings


@dataclass(frozen=True)
class Plan:
    """How to wrap the child: the tool, its flags, and what the setup program should do."""

    tool: str | None  # "unshare", "bwrap" or None
    flags: tuple[str, ...] = ()
    fs: bool = False  # the setup program builds the file-system view (unshare)
    uid: bool = False  # try a throwaway uid (root only)
    wrapper_features: tuple[str, ...] = ()  # what the tool itself guarantees (bwrap: fs)


@dataclass
class Info:
    version: str
    executable: str
    paths: list[str] = field(default_factory=list)  # what the file-system view must keep
    sys_path: list[str] = field(default_factory=list)  # where its installed distributions are


_lock = threading.Lock()  # guards the caches below
_probe_lock = threading.Lock()  # one probe at a time, so each method is probed once
_plans: dict[str, tuple[Plan, tuple[str, ...]]] = {}
_infos: dict[str, Info] = {}


def host_namespaces() -> dict[str, int]:
    found = {}
    for kind in ("net", "pid"):
        try:
            found[kind] = os.stat(f"/proc/self/ns/{kind}").st_ino
        except OSError:
            pass
    return found


def _candidates(method: str) -> list[Plan]:
    plans: list[Plan] = []
    if method in ("auto", "unshare") and shutil.which("unshare") and sys.platform == "linux":
        base = ("--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts")
        variants = [(), ("--map-root-user",)] if os.geteuid() == 0 else [("--map-root-user",)]
        for extra in variants:
            for fs in (True, False):
                plans.append(Plan("unshare", extra + base, fs=fs, uid=os.geteuid() == 0))
    if method in ("auto", "bwrap") and shutil.which("bwrap"):
        plans.append(Plan("bwrap", wrapper_features=("fs",)))
    if method in ("auto", "none"):
        plans.append(Plan(None, uid=os.geteuid() == 0))
    return plans


def describe(tool: str | None, features: Sequence[str], rlimits: bool) -> str:
    parts = [tool + ("-net" if "net" in features else "")] if tool else []
    parts += [f for f in ("pid", "fs", "uid") if f in features and (tool or f == "uid")]
    if rlimits:
        parts.append("rlimits")
    if parts == ["rlimits"]:
        return "rlimits-only"
    return "+".join(parts) or "none"


def plan_for(method: str) -> tuple[Plan, tuple[str, ...]]:
    """The first plan of ``method`` that runs a trivial snippet here, and its features."""
    from .supervise import execute, remove_orphaned_workdirs

    with _probe_lock:
        with _lock:
            if method in _plans:
                return _plans[method]
        if not _plans:
            remove_orphaned_workdirs()
        # Nothing worked: rlimits only, still refusing to run as root (each run then says why).
        chosen = (Plan(None, uid=os.geteuid() == 0), ())
        settings = SandboxSettings(timeout=30.0)
        interpreter = os.path.abspath(settings.interpreter)
        info = interpreter_info(interpreter)
        for plan in _candidates(method):
            try:
                run = execute("print('sandbox-ok')", plan, settings, interpreter,
                               info if isinstance(info, Info) else None, ())
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
    plan, features = plan_for(method)
    return describe(plan.tool, features, rlimits=not plan.tool)


def interpreter_info(path: str) -> Info | str:
    """Facts about an interpreter (cached), or why it cannot be run."""
    with _lock:
        if path in _infos:
            return _infos[path]
    try:
        out = subprocess.run([path, "-I", "-c", program("facts")], capture_output=True, timeout=60,
                             env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}, check=False,
                             stdin=subprocess.DEVNULL)
        data = json.loads(out.stdout) if out.returncode == 0 else None
        info: Info | str = (Info(data["version"], data["executable"], data["paths"],
                                   data.get("sys_path") or [])
                             if data else f"exit code {out.returncode}: "
                             f"{out.stderr.decode(errors='replace').strip()[-200:]}")
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        info = f"{type(exc).__name__}: {exc}"
    if isinstance(info, str):
        return info  # not cached: the next call tries again
    with _lock:
        return _infos.setdefault(path, info)


def is_this_interpreter(interpreter: str | None) -> bool:
    """Whether ``interpreter`` (None: the default) names the one running this process.

    Compared by absolute path, never by ``realpath``: a virtual environment's ``python`` is a
    symlink to its base interpreter, yet it is another environment (its own prefix and
    site-packages), and two environments made from one base share one real file.
    """
    return not interpreter or os.path.abspath(interpreter) == os.path.abspath(sys.executable)


def python_version(interpreter: str | None = None) -> str:
    """The Python version of ``interpreter`` (default: this one), or ``"unknown"``."""
    if is_this_interpreter(interpreter):
        return platform.python_version()
    info = interpreter_info(os.path.abspath(interpreter))
    return info.version if isinstance(info, Info) else "unknown"


_VERSIONS = ("import json, sys, importlib.metadata as m\n"
             "def v(n):\n    try: return m.version(n)\n    except Exception: return None\n"
             "print(json.dumps({n: v(n) for n in json.loads(sys.argv[1])}))")


def installed_versions(names: Iterable[str], interpreter: str | None = None) -> dict[str, str | None]:
    """Installed versions of distributions ``names`` (None: not installed) in this interpreter
    or in ``interpreter``; empty when that interpreter cannot be asked."""
    names = sorted(set(names))
    if not names:
        return {}
    if is_this_interpreter(interpreter):
        from ..imports import installed_version

        return {n: installed_version(n) for n in names}
    try:
        done = subprocess.run([os.path.abspath(interpreter), "-I", "-c", _VERSIONS, json.dumps(names)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              cwd=os.path.expanduser("~"))
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {n: found.get(n) if isinstance(found.get(n), str) else None for n in names}
