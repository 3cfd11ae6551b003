"""The warm pool: one pre-started interpreter inside the isolation, forking a child per snippet.

``WarmPool.start()`` runs the same wrapper and setup program as a cold run, but the
setup program execs ``zygote.py`` (which imports the batch's *installed* modules,
never the checkout: no ``PYTHONPATH`` at warm-up, one BLAS/OpenMP thread) instead of
the runner. ``run(code)`` sends one request and reads one result; the record is then
built by the same trusted ``judge`` as a cold run. A pool that dies raises
``PoolDied``: the caller serves the rest cold or leaves it pending.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import capture
from .distributions import fingerprint
from .probe import Info, Plan, host_namespaces
from .programs import program
from .settings import MIB, SCRIPT_NAME, WORKDIR_PREFIX, SandboxSettings
from .supervise import Run, _command, _environment, _keep, _masks, _next_uid, _release_uid, _remove_tree

START_TIMEOUT = 180.0  # warm-up imports on a loaded machine
GRACE = 30.0  # beyond a snippet's own timeout, before the pool counts as stuck


class PoolDied(RuntimeError):
    """The warm interpreter ended or stopped answering."""


@dataclass
class WarmPool:
    """A warm interpreter for one (interpreter, python_path, modules); one snippet at a time.

    ``python_path``: every folder its children may have on their path (all visible, read-only);
    ``modules`` must hold none that one of them provides."""

    plan: Plan
    features: tuple[str, ...]
    settings: SandboxSettings
    interpreter: str
    info: Info
    python_path: tuple[str, ...]
    modules: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)  # module -> why its import failed
    stamp: tuple = ()
    proc: subprocess.Popen | None = None
    base: str = ""
    setup: dict | None = None
    _n: int = 0
    _lifeline_w: int = -1
    _report_r: int = -1
    _buf: bytes = b""

    def start(self) -> None:
        """Start the interpreter and wait for its imports; raises ``PoolDied`` when it cannot."""
        self.stamp = fingerprint(self.info.sys_path)
        self.base = os.path.realpath(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-warm-"))
        os.mkdir(os.path.join(self.base, capture.DIRNAME))
        keep = _keep(self.info, self.interpreter, self.python_path)
        scratch, homes = _masks()
        report_r, report_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        env = _environment(self.base, self.python_path, self.interpreter)
        warm_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # never the checkout at warm-up
        cap = capture.settings(self.base)
        cfg = {
            "report_fd": report_w, "lifeline": lifeline_r, "watchdog": False,
            "host_ns": host_namespaces(), "workdir": self.base, "interpreter": self.interpreter,
            "keep": keep, "scratch": scratch, "homes": homes,
            "scratch_mb": max(self.settings.file_mb, 16), "work_mb": max(4 * self.settings.file_mb, 16),
            "fs": self.plan.fs, "uid": None, "limits": {},
            "run": {"script": "", "capture": cap},
            "warm": {"program": program("zygote"), "modules": list(self.modules), "env": warm_env,
                     "child_env": env, "probe_uid": _next_uid()},
        }
        cmd = _command(self.plan, self.settings, self.base, keep, scratch, homes)
        cmd += [self.interpreter, "-I", "-S", "-c", program("setup"), json.dumps(cfg), program("runner")]
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.base, env=warm_env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         pass_fds=(report_w, lifeline_r), start_new_session=True)
        except OSError as exc:
            os.close(report_r)
            os.close(lifeline_w)
            self._cleanup()
            raise PoolDied(f"cannot start: {exc}") from exc
        finally:
            os.close(report_w)
            os.close(lifeline_r)
        self._lifeline_w, self._report_r = lifeline_w, report_r
        try:
            ready = self._read_line(START_TIMEOUT)
        finally:
            _release_uid(cfg["warm"]["probe_uid"])  # its probe child has ended by then (or never will run)
        self.setup = self._setup_event()
        if not ready or not ready.get("ready") or self.setup is None:
            why = (ready or {}).get("error") or self._stderr_tail() or "it ended during warm-up"
            self.close()
            raise PoolDied(f"warm-up failed: {why}"[:300])
        self.failed = {str(k): str(v) for k, v in (ready.get("failed") or {}).items()}

    def _setup_event(self) -> dict | None:
        data = b""
        while select.select([self._report_r], [], [], 0)[0]:
            chunk = os.read(self._report_r, 65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 65536:
                break
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "setup":
                return event
        return None

    def _stderr_tail(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            os.set_blocking(self.proc.stderr.fileno(), False)
            data = self.proc.stderr.read() or b""
        except (OSError, ValueError):
            data = b""
        lines = [x for x in data.decode(errors="replace").splitlines() if x.strip()]
        return lines[-1] if lines else ""

    def _read_line(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def current(self) -> bool:
        """False when an installed distribution changed since warm-up (the pool must be rebuilt)."""
        return fingerprint(self.info.sys_path) == self.stamp

    def run(self, code: str, python_path: Sequence[str] | None = None) -> Run:
        """Run ``code`` in a fresh child of the warm interpreter, with ``python_path`` (some of the
        pool's own, all of them when None) on its ``sys.path``."""
        if not self.alive():
            raise PoolDied("the warm interpreter is not running")
        assert self.proc is not None and self.proc.stdin is not None
        self._n += 1
        workdir = self.base  # the child's own, emptied for it: as deep as a cold run's
        cpu = self.settings.cpu_seconds or int(self.settings.timeout) + 5
        cap = capture.settings(workdir)
        cap["dir"] = os.path.join(workdir, capture.DIRNAME)
        req = {"n": self._n, "code": code, "workdir": workdir, "script": os.path.join(workdir, SCRIPT_NAME),
               "uid": _next_uid(), "timeout": self.settings.timeout,
               "python_path": list(self.python_path if python_path is None else python_path),
               "tree_memory": self.settings.tree_bound, "capture": cap,
               "limits": {"memory": self.settings.memory_mb * MIB, "cpu": cpu,
                          "fsize": self.settings.file_mb * MIB, "nproc": self.settings.max_processes}}
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
            result = self._read_line(self.settings.timeout + GRACE)
            if result is None or result.get("n") != self._n:
                self.close()  # and with it the namespace, and whatever of the uid was in it
                raise PoolDied("the warm interpreter ended or stopped answering")
            if "error" in result:
                self.close()
                raise PoolDied(f"the warm interpreter could not run it: {result['error']}"[:300])
        except OSError as exc:
            self.close()
            raise PoolDied(f"the warm interpreter stopped reading: {exc}") from exc
        finally:
            _release_uid(req["uid"])  # answered: every process of the uid was killed first
        sig = result.get("signal")
        run = Run(returncode=-int(sig) if sig else int(result.get("code", 1)),
                  timed_out=bool(result.get("timed_out")), duration=float(result.get("duration") or 0.0),
                  stdout=base64.b64decode(result.get("stdout") or ""),
                  stderr=base64.b64decode(result.get("stderr") or ""), setup=self.setup)
        run.memory = bool(result.get("memory"))
        outputs = os.path.join(self.base, capture.DIRNAME, str(self._n))
        try:
            run.captured = capture.collect(outputs)
        finally:
            _remove_tree(outputs)
        return run

    def close(self) -> None:
        """End the interpreter and everything in its namespace; remove its directory."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            self.proc = None
        for fd in (self._lifeline_w, self._report_r):
            if fd >= 0:
                os.close(fd)
        self._lifeline_w = self._report_r = -1
        self._cleanup()

    def _cleanup(self) -> None:
        if self.base:
            _remove_tree(self.base)

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def warm_modules(codes: Sequence[str], python_path: Sequence[str], installed_tops: set[str],
                 limit: int = 80) -> tuple[str, ...]:
    """The installed modules a batch imports (dotted, e.g. ``scipy.stats``), never one the checkout
    provides; the most used first, at most ``limit``."""
    import ast
    from collections import Counter

    from .distributions import _imports, _is_local

    roots = [p for p in python_path if os.path.isdir(p)]
    counts: Counter[str] = Counter()
    for code in codes:
        try:
            names = _imports(ast.parse(code), "")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        counts.update({n for n in names if n.partition(".")[0] in installed_tops
                       and not _is_local(n.partition(".")[0], roots)})
    from .fontcache import may_plot

    if any(n.partition(".")[0] == "matplotlib" for n in counts) or (
            "matplotlib" in installed_tops and any(may_plot(c) for c in codes)):  # also pandas' or lifelines' .plot()
        counts["matplotlib.pyplot"] += len(codes)  # its font list, built once here, shared by the children
    return tuple(sorted(n for n, _ in counts.most_common(limit)))


def dotted_imports(code: str) -> set[str]:
    """Every module name (dotted) ``code`` imports, and the names it imports from them."""
    import ast

    from .distributions import _imports

    try:
        return _imports(ast.parse(code), "")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
