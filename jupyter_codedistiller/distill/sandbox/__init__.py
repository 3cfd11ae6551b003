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

import collections
import os
import shutil
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...model import Validation, utcnow
from .. import capture
from .distributions import missing, used_distributions
from .probe import Info, Plan, describe, interpreter_info, isolation_available, plan_for
from .reasons import escapes_without_namespaces, final_exception, signal_name, skip_reason, static_needs, tail
from .settings import ISOLATION_METHODS, SandboxSettings, isolates_network, weakest_isolation
from .supervise import Run, execute

if TYPE_CHECKING:
    from .warm import WarmPool

__all__ = [
    "ISOLATION_METHODS",
    "SandboxSettings",
    "isolates_network",
    "isolation_available",
    "Task",
    "validate",
    "validate_many",
    "weakest_isolation",
]


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
    info = interpreter_info(interpreter)
    if isinstance(info, str):
        return Validation(status="skipped", reason=f"interpreter {interpreter} cannot run: {info}",
                          when=when, duration=0.0, interpreter=interpreter, mode="cold")
    plan, features = plan_for(settings.isolation)
    refused = refusal(code, settings, plan, features, interpreter, info, when)
    if refused is not None:
        return refused
    from . import fontcache

    seed = fontcache.seed(code, plan, settings, interpreter, info)  # matplotlib's font list, built once
    run = execute(code, plan, settings, interpreter, info, python_path, seed=seed)
    return judge(code, run, plan, settings, interpreter, info, python_path, requirements, when, "cold")


def refusal(code: str, settings: SandboxSettings, plan: Plan, features: Sequence[str], interpreter: str,
            info: Info, when: str) -> Validation | None:
    """The record of a snippet this machine will not run at all (and why), or None to run it."""
    static = static_needs(code)
    if "network" in static and not settings.network and "net" not in features:
        return Validation(status="skipped", reason="needs network (not run: this machine "
                          "cannot cut the network)", when=when, duration=0.0,
                          interpreter=interpreter, python_version=info.version,
                          isolation=describe(plan.tool, features, rlimits=True), mode="cold")
    if plan.tool is None:
        escape = escapes_without_namespaces(code)
        if escape:
            return Validation(status="skipped", reason=f"not run: it {escape}, and without namespaces this "
                              "machine cannot contain sockets or background processes", when=when,
                              duration=0.0, interpreter=interpreter, python_version=info.version,
                              isolation=describe(plan.tool, features, rlimits=True), mode="cold")
    return None


def judge(code: str, run: Run, plan: Plan, settings: SandboxSettings, interpreter: str, info: Info,
          python_path: Sequence[str], requirements: Mapping[str, str | None] | None, when: str,
          mode: str) -> Validation:
    """The validation record of one run, built from trusted facts only.

    The run's events come from the setup program and the namespace's init; the
    versions from the interpreter's installed metadata, read here; the snippet's
    output is data (tails), never parsed as events.
    """
    static = static_needs(code)
    achieved = list(run.features) + [f for f in plan.wrapper_features if run.setup is not None]
    roots = [os.path.realpath(p) for p in python_path]
    try:
        packages = used_distributions(code, info.sys_path, roots)
    except Exception:  # broken metadata on the path: the record names no versions
        packages = {}
    v = Validation(
        status="failed",
        when=when,
        duration=round(run.duration, 3),
        interpreter=interpreter,
        python_version=info.version,
        packages=packages,
        isolation=describe(plan.tool, achieved, run.rlimits),
        exit_code=run.returncode,
        stdout_tail=tail(run.stdout),
        stderr_tail=tail(run.stderr),
        mode=mode,
    )
    capture.attach(v, run.captured)
    if run.returncode > 128 and not run.timed_out:
        # The namespace's init (or bwrap) exits 128+N when the snippet died of signal N.
        said = (run.exit or {}).get("signal")
        if plan.tool == "bwrap" or said == run.returncode - 128:
            v.exit_code = -(run.returncode - 128)
    stderr = run.stderr.decode("utf-8", errors="replace")
    if run.setup is None and not run.timed_out:
        v.status = "skipped"
        what = run.setup_error or final_exception(stderr) or f"exit code {run.returncode}"
        v.reason = f"sandbox setup failed: {what}"[:300]
        v.packages = {}
        return v
    if run.memory:
        v.status, v.reason = "failed", "memory"  # over the bound across its whole process tree
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
        v.reason = f"killed by {signal_name(-v.exit_code)}"
    else:
        v.reason = final_exception(stderr)[:300] or f"exit code {v.exit_code}"
    try:
        absent = missing(list(requirements or ()), [*info.sys_path, *roots])
    except Exception:
        absent = []
    why = skip_reason(stderr, static, run.timed_out, absent)
    if why:
        v.status, v.reason = "skipped", why
    return v


@dataclass(frozen=True)
class Task:
    """One snippet to validate: plain data, so a cluster worker can be sent it."""

    code: str
    python_path: tuple[str, ...] = ()
    requirements: Mapping[str, str | None] = field(default_factory=dict)
    key: object = None  # the caller's own handle (e.g. snippet id and revision)


def warm_available(settings: SandboxSettings | None = None) -> str | None:
    """Why snippets cannot be served warm on this machine, or None when they can."""
    settings = settings or SandboxSettings()
    plan, features = plan_for(settings.isolation)
    if plan.tool != "unshare" or not plan.fs or not {"pid", "uid"} <= set(features):
        level = describe(plan.tool, features, True)
        return f"warm needs namespaces and a throwaway uid per snippet (this machine: {level})"
    return None


def validate_many(tasks: Iterable[Task], *, settings: SandboxSettings | None = None,
                  warm: bool = True, workers: int = 1) -> Iterator[tuple[Task, Validation]]:
    """Validate ``tasks``, yielding each ``(task, validation)`` as it is done.

    ``workers`` servers take tasks from one shared queue, in the order given;
    with one, results come in that order, with more, as they are done. Each
    server is a warm interpreter of its own, a full sandbox (own namespaces,
    ``/tmp``, ``/dev/shm``, loopback, ``/proc``) that sees every ``python_path``
    of the batch and has imported the installed modules the tasks use, none
    that a path provides (rebuilt when an installed version changes); each
    child gets its own task's path. What it cannot serve runs cold, with
    ``mode_reason`` saying why. Raises ``warm.PoolDied`` when a warm interpreter
    dies twice running the same snippet: what was yielded is done, the rest is
    left to the caller (pending).
    """
    yield from validate_batches([tasks], settings=settings, warm=warm, workers=workers)


def validate_batches(batches: Iterable[Iterable[Task]], *, settings: SandboxSettings | None = None,
                     warm: bool = True, workers: int = 1, first: int = 0) -> Iterator[tuple[Task, Validation]]:
    """``validate_many`` over several batches (a refresh's sources), each its own domain: its
    warm interpreters see only its paths and have imported only what its tasks use, never a
    module its paths provide. ``workers`` servers serve the batches in the order given, each
    taking a batch no other serves while there is one, so a batch pays one warm-up, not one
    per server; a server whose batch has nothing left to hand out moves on to the next (as a
    warm interpreter of that batch's), so one batch's last slow snippet holds up one core, not
    all. With ``first``, each batch's first ``first`` tasks are handed out before any batch's
    others: every batch gets its most wanted done early."""
    from .distributions import installed
    from .warm import warm_modules

    settings = settings or SandboxSettings()
    batches = [list(tasks) for tasks in batches]
    interpreter = os.path.abspath(shutil.which(settings.interpreter) or settings.interpreter)
    info = interpreter_info(interpreter)
    no_warm = "warm is off" if not warm else warm_available(settings)
    if isinstance(info, str) or no_warm:
        def cold() -> _Cold:
            return _Cold(settings, None if isinstance(info, str) else no_warm)

        yield from _shared_queue(_heads_first([([(t, ()) for t in tasks], cold) for tasks in batches], first),
                                 workers)
        return
    plan, features = plan_for(settings.isolation)
    tops = set(installed(info.sys_path).tops)
    groups = []
    for tasks in batches:
        # One warm interpreter serves every python_path of the batch (a source's checkout and the
        # example folders its scripts read data from): all of them are visible read-only in its
        # namespace, and it imports no module any of them provides, so each child's own path
        # resolves its imports as a cold run's would. Tasks stay in the order given.
        queue = [(t, tuple(os.path.realpath(p) for p in t.python_path)) for t in tasks]
        paths = tuple(dict.fromkeys(p for _, path in queue for p in path))
        modules = warm_modules([t.code for t in tasks], paths, tops)

        def server(paths: tuple[str, ...] = paths, modules: list[str] = modules) -> _Warm:
            return _Warm(settings, plan, features, interpreter, info, paths, modules)

        groups.append((queue, server))
    yield from _shared_queue(_heads_first(groups, first), workers)


Group = tuple[list[tuple[Task, tuple[str, ...]]], Callable[[], "_Cold | _Warm"], int]


def _heads_first(groups: list[tuple[list[tuple[Task, tuple[str, ...]]], Callable[[], _Cold | _Warm]]],
                 first: int) -> list[Group]:
    """The groups with their rank: with ``first``, each group's first ``first`` tasks as a group
    of rank 0, its others as one of rank 1; a head and its rest share the factory (one domain: a
    server moves from one to the other without a new warm-up)."""
    if first <= 0:
        return [(q, make, 0) for q, make in groups]
    return [(q[:first], make, 0) for q, make in groups] + [(q[first:], make, 1) for q, make in groups]


class _Cold:
    """Serves every task cold (no warm pool on this machine, or warm is off)."""

    def __init__(self, settings: SandboxSettings, why: str | None) -> None:
        self.settings, self.why = settings, why

    def serve(self, t: Task, path: tuple[str, ...]) -> Validation:
        v = validate(t.code, python_path=t.python_path, settings=self.settings, requirements=t.requirements)
        if self.why:
            v.mode_reason = self.why
        return v

    def close(self) -> None:
        pass


class _Warm:
    """One warm interpreter for a batch's python_paths (started on first use) and its cold fallback."""

    def __init__(self, settings: SandboxSettings, plan: Plan, features: Sequence[str], interpreter: str,
                 info: Info, paths: tuple[str, ...], modules: tuple[str, ...]) -> None:
        self.settings, self.plan, self.features = settings, plan, tuple(features)
        self.interpreter, self.info, self.paths, self.modules = interpreter, info, paths, modules
        self.pool: WarmPool | None = None
        self.started = False
        self.why_cold: str | None = None

    def _fresh(self) -> WarmPool:
        from .warm import WarmPool

        p = WarmPool(self.plan, self.features, self.settings, self.interpreter, self.info, self.paths, self.modules)
        p.start()
        return p

    def serve(self, t: Task, path: tuple[str, ...]) -> Validation:
        from .warm import PoolDied, dotted_imports

        s, plan, info = self.settings, self.plan, self.info
        when = utcnow()
        refused = refusal(t.code, s, plan, self.features, self.interpreter, info, when)
        if refused is not None:
            return refused
        if not self.started:
            self.started = True
            try:
                self.pool = self._fresh()
            except PoolDied as exc:
                self.why_cold = str(exc)
        pool = self.pool
        needs = dotted_imports(t.code)
        broken = sorted(m for m in (pool.failed if pool else {}) if m in needs)
        if pool is None or broken:
            v = validate(t.code, python_path=t.python_path, settings=s, requirements=t.requirements)
            v.mode_reason = self.why_cold or (f"warm-up could not import {broken[0]}: "
                                              f"{pool.failed[broken[0]]}" if pool else None)
            return v
        if not pool.current():  # an installed distribution changed: warm up again
            pool.close()
            self.pool = pool = self._fresh()
        try:
            run = pool.run(t.code, path)
        except PoolDied:
            pool.close()
            self.pool = pool = self._fresh()  # once more, in a fresh interpreter
            run = pool.run(t.code, path)
        return judge(t.code, run, plan, s, self.interpreter, info, path, t.requirements, when, "warm")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _shared_queue(groups: list[Group], workers: int) -> Iterator[tuple[Task, Validation]]:
    """Serve each group's queue with servers its factory makes, ``workers`` at a time taking
    tasks in order; yield results as they come. A server stays with its group while the group
    has tasks to hand out, then moves to the next group with some: one that no server serves
    before one that is served, then the lowest rank, then one of its own factory (it keeps
    itself: no new warm-up), then the first; a server of another factory is closed and one of
    the new group's made.

    The first error a server raises stops the others taking more; what they finish is yielded,
    then the error is raised, after every server is closed.
    """
    groups = [g for g in groups if g[0]]
    workers = max(1, min(workers, sum(len(g[0]) for g in groups)))
    if workers == 1:  # in this thread, in order, one task at a time as the caller asks
        one, made_by = None, None
        try:
            for q, make, _ in groups:
                if make is not made_by:
                    if one is not None:
                        one.close()
                    one, made_by = make(), make
                for t, path in q:
                    yield t, one.serve(t, path)
        finally:
            if one is not None:
                one.close()
        return
    import queue as queues
    import threading

    lock = threading.Lock()
    pending = [collections.deque(g[0]) for g in groups]
    serving = [0] * len(groups)
    out: queues.Queue = queues.Queue()
    stop = threading.Event()

    def next_group(mine: int) -> int:
        left = [i for i, q in enumerate(pending) if q]
        own = groups[mine][1] if mine >= 0 else None
        return min(left, key=lambda i: (serving[i] > 0, groups[i][2], groups[i][1] is not own, i), default=-1)

    def work() -> None:
        mine, group = None, -1
        try:
            while not stop.is_set():
                done = None
                with lock:
                    if group < 0 or not pending[group]:
                        if group >= 0:
                            serving[group] -= 1
                        new = next_group(group)
                        if new < 0:
                            break
                        if group < 0 or groups[new][1] is not groups[group][1]:
                            done, mine = mine, None
                        group = new
                        serving[group] += 1
                    t, path = pending[group].popleft()
                if done is not None:
                    done.close()
                if mine is None:
                    mine = groups[group][1]()
                out.put((t, mine.serve(t, path)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            stop.set()
            out.put(exc)
        finally:
            if mine is not None:
                mine.close()
            out.put(None)

    threads = [threading.Thread(target=work, name="codedistiller-sandbox", daemon=True) for _ in range(workers)]
    for th in threads:
        th.start()
    error: BaseException | None = None
    running = workers
    try:
        while running:
            item = out.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                error = error or item
            else:
                yield item
    finally:
        stop.set()
        for th in threads:
            th.join()
    if error is not None:
        raise error
