"""Validation on a Dask cluster: the sandbox runs on the workers, the library stays here.

``ClusterExecutor(address)`` connects to a Dask scheduler. ``validate_many``
takes a source's snippets (each with the ``python_path`` it runs with), groups
them per package into small batches (so a worker's warm sandbox is reused),
keeps at most a bounded number of batches in flight, and yields
``(snippet, Validation)`` as each batch comes back, or ``(snippet,
exception)`` when a batch could not be run. The caller (``refresh``) is the
only writer: it stores each result in its own short transaction, so a killed
coordinator or worker loses no stored result, and the next refresh validates
what is still pending.

A git source's checkout is shipped with the tasks: its ``git archive`` at the
distilled commit becomes one scattered Dask future (sent once, then copied
between workers), unpacked once per machine (``tarfile``'s ``data`` filter:
nothing outside the folder, no links out) and put on the sandbox's path in
place of the library's checkout, so workers need no shared file system.

On the worker, ``run_batch`` probes the worker's own interpreter (the one its
sandbox runs) for the Python version and the versions of the batch's
distributions, compares them with the library's environment (sent by the
coordinator), and runs only the snippets whose environment matches; the others
are ``skipped`` with the difference as the reason (``MISMATCH`` prefix). The
coordinator checks every returned record again against the versions the
snippet actually imported, so a record from a differing worker is never a
silent ``passed``. Every record names the worker (``host``, ``worker``).

Dask's own mechanisms carry the faults: a task lost with a worker is
rescheduled on another (``distributed.scheduler.allowed-failures``), a task
that raised is retried once. ``distributed`` is imported only here, inside
the functions that need it (``pip install jupyter-codedistiller[cluster]``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..figures import held, hold
from ..library import LibraryError
from ..model import Validation, _pick, utcnow

if TYPE_CHECKING:
    from ..model import Snippet

MISMATCH = "cluster worker environment differs: "
NO_CHECKOUT = "needs the source's checkout on the worker: "
CHECKOUT = "<checkout>"  # a python_path entry inside the shipped checkout starts with this
ARCHIVE_MAX = 256 * 1024 * 1024  # a bigger checkout is not shipped: workers must see it on a shared file system
KEPT_CHECKOUTS = 16  # unpacked checkouts a worker machine keeps
BATCH_MAX = 8  # snippets per task at most
IN_FLIGHT_PER_THREAD = 2  # batches queued per worker thread
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx|inproc)://)?[\w.\-\[\]:]+(?::\d+)?$")


class ClusterError(LibraryError):
    """The cluster cannot be used (no scheduler there, no distributed installed); one line."""


def check_address(address: str) -> str:
    """``address`` if it looks like a scheduler address (``tcp://HOST:PORT``), else ClusterError."""
    address = address.strip()
    if not address or not ADDRESS.match(address):
        raise ClusterError(f"not a Dask scheduler address: {address!r} (e.g. tcp://scheduler:8786)")
    return address


@dataclass
class Task:
    """One snippet as a worker needs it: no library, only what runs."""

    snippet_id: str
    revision: int
    code: str
    python_path: list[str]
    requirements: dict[str, str | None]


@dataclass
class Environment:
    """An interpreter's Python version and the versions of the distributions asked about."""

    python: str
    packages: dict[str, str | None] = field(default_factory=dict)
    host: str | None = None
    worker: str | None = None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def differences(expected: Environment, found: Environment, names: Iterable[str]) -> list[str]:
    """What differs between the library's environment and a worker's, for ``names``."""
    out = []
    if _minor(found.python) != _minor(expected.python):
        out.append(f"Python {found.python} on the worker, {expected.python} here")
    for name in sorted(set(names)):
        want, have = expected.packages.get(name), found.packages.get(name)
        if want != have:
            out.append(f"{name} {have or 'not installed'} on the worker, {want or 'not installed'} here")
    return out


# ------------------------------------------------------------------ on the worker

_probe_lock = threading.Lock()
_probe: dict[str, Any] = {"generation": None, "python": None, "packages": {}}


def worker_environment(names: Iterable[str], generation: str) -> Environment:
    """This worker's interpreter and the versions of ``names`` in it (cached per ``generation``)."""
    from .imports import forget_environment
    from .sandbox.probe import installed_versions, python_version

    with _probe_lock:
        if _probe["generation"] != generation:  # a new refresh: packages may have been installed
            forget_environment()
            _probe.update(generation=generation, python=python_version(sys.executable), packages={})
        known: dict[str, str | None] = _probe["packages"]
        wanted = sorted(set(names) - set(known))
        if wanted:
            known.update({n: installed_versions([n]).get(n) for n in wanted})
        packages = {n: known.get(n) for n in names}
    return Environment(python=_probe["python"], packages=packages, host=socket.gethostname(),
                       worker=_worker_address())


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a Dask task
        return None


_unpack_lock = threading.Lock()


def _safe_member(member: Any, dest: str) -> Any:
    """tarfile's ``data`` filter, dropping (not failing on) a member it refuses (a link out)."""
    import tarfile

    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


def unpack_checkout(archive: bytes) -> str:
    """The folder holding ``archive`` (a tar of a checkout) on this machine, unpacked once."""
    import hashlib
    import io
    import shutil
    import tarfile
    import tempfile

    top = os.path.join(tempfile.gettempdir(), "codedistiller-checkouts")
    dest = os.path.join(top, hashlib.sha256(archive).hexdigest()[:24])
    with _unpack_lock:
        if os.path.isdir(dest):
            return dest
        os.makedirs(top, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".unpack-", dir=top)
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(work, filter=_safe_member)
            os.chmod(work, 0o755)  # the sandbox may run as a throwaway uid: it must read this
            try:
                os.rename(work, dest)  # another process may have won: its copy is the same
            except OSError:
                pass
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _trim(top, keep=dest)
    return dest


def _trim(top: str, keep: str, most: int = KEPT_CHECKOUTS) -> None:
    """Remove all but the ``most`` most recently unpacked checkouts under ``top``."""
    import shutil

    try:
        dirs = sorted((e for e in os.scandir(top) if e.is_dir() and not e.name.startswith(".")),
                      key=lambda e: e.stat().st_mtime, reverse=True)
    except OSError:
        return
    for entry in dirs[most:]:
        if entry.path != keep:
            shutil.rmtree(entry.path, ignore_errors=True)


def run_batch(tasks: Sequence[Task], settings: Any, expected: Environment,
              generation: str, archive: bytes | None = None) -> list[tuple[str, int, dict[str, Any]]]:
    """Validate ``tasks`` in this worker's sandbox: ``(snippet id, revision, validation)`` each.

    Runs on a Dask worker, with the worker's own interpreter. ``archive`` is
    the source's checkout (a tar), unpacked here once; ``python_path`` entries
    starting with ``CHECKOUT`` point into it. A snippet whose requirements
    differ from ``expected`` (or whose ``python_path`` is not on this machine)
    is skipped unrun, with the reason.
    """
    from . import sandbox

    names = {n for t in tasks for n in t.requirements}
    env = worker_environment(names, generation)
    if archive is not None:
        try:
            root: str | None = unpack_checkout(archive)
        except Exception:  # noqa: BLE001 - e.g. no tarfile filters before 3.10.12: then the path is missing
            root = None
        if root is not None:
            tasks = [dataclasses.replace(t, python_path=[
                os.path.join(root, p[len(CHECKOUT):].lstrip("/")) if p.startswith(CHECKOUT) else p
                for p in t.python_path]) for t in tasks]
    here = f"{env.host} ({env.worker})" if env.worker else str(env.host)
    runnable: list[Task] = []
    out: list[tuple[str, int, dict[str, Any]]] = []

    def record(task: Task, v: Validation) -> None:
        v.host, v.worker = env.host, env.worker
        out.append((task.snippet_id, task.revision, {**dataclasses.asdict(v), "figure_data": held(v)}))

    for t in tasks:
        diff = differences(expected, env, t.requirements)
        missing = [p for p in t.python_path if not os.path.isdir(p)]
        if diff:
            record(t, Validation(status="skipped", reason=f"{MISMATCH}{here}: " + "; ".join(diff),
                                 when=utcnow(), duration=0.0, interpreter=sys.executable,
                                 python_version=env.python))
        elif missing:
            record(t, Validation(status="skipped", reason=f"{NO_CHECKOUT}{missing[0]} is not on {here}",
                                 when=utcnow(), duration=0.0, interpreter=sys.executable,
                                 python_version=env.python))
        else:
            runnable.append(t)
    own = dataclasses.replace(settings, interpreter=sys.executable) if settings is not None else None
    served: set[str] = set()
    many, job = getattr(sandbox, "validate_many", None), getattr(sandbox, "Task", None)
    if many is not None and job is not None and runnable:  # the warm pool, where this machine has it
        try:
            jobs = [job(code=t.code, python_path=tuple(t.python_path), requirements=dict(t.requirements), key=t)
                    for t in runnable]
            for done, v in many(jobs, settings=own):
                record(done.key, v)
                served.add(done.key.snippet_id)
        except Exception:  # noqa: BLE001 - the warm interpreter died: what is left runs cold
            pass
    for t in runnable:
        if t.snippet_id not in served:
            record(t, sandbox.validate(t.code, python_path=t.python_path, settings=own,
                                       requirements=t.requirements))
    return out


# ------------------------------------------------------------------ the coordinator


class ClusterExecutor:
    """Validation through a Dask scheduler; this process stays the library's only writer."""

    def __init__(self, address: str, *, connect_timeout: float | None = None, batch_max: int = BATCH_MAX,
                 in_flight_per_thread: int = IN_FLIGHT_PER_THREAD) -> None:
        self.address = check_address(address)
        try:
            from distributed import Client
        except ImportError:
            raise ClusterError("validating on a cluster needs distributed: "
                               "pip install 'jupyter-codedistiller[cluster]'") from None
        if connect_timeout is None:  # Dask's own setting (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
            import dask

            connect_timeout = dask.config.get("distributed.comm.timeouts.connect", 30)
        try:
            self.client = Client(self.address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.address}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self.batch_max = batch_max
        self.in_flight_per_thread = in_flight_per_thread
        self.generation = f"{os.getpid()}-{time.time_ns()}"
        self.started: float | None = None
        self.done = 0
        self.peak_in_flight = 0  # most batches submitted and not yet back, at any time
        self.busy_seconds = 0.0  # coordinator time spent preparing, submitting and checking
        self._expected: dict[str, str | None] = {}
        self._python: dict[str | None, str] = {}
        self._archives: dict[tuple[str, str], Any] = {}
        self._threads: tuple[float, dict[str, int]] | None = None

    def close(self) -> None:
        try:
            self.client.close(timeout=10)
        except Exception:  # a scheduler that died meanwhile: nothing left to close
            pass

    def __enter__(self) -> ClusterExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the cluster looks like

    def threads(self, max_age: float = 1.0) -> dict[str, int]:
        """Connected workers and their thread counts (asked of the scheduler at most once a second)."""
        now = time.monotonic()
        if self._threads is None or now - self._threads[0] > max_age:
            try:
                info = self.client.scheduler_info(n_workers=-1)
            except TypeError:  # older distributed: no n_workers argument
                info = self.client.scheduler_info()
            self._threads = (now, {addr: int(w.get("nthreads", 1)) for addr, w in info.get("workers", {}).items()})
        return self._threads[1]

    def rate(self) -> float:
        """Snippets per minute since the first submission."""
        if not self.started or not self.done:
            return 0.0
        return self.done / max(time.monotonic() - self.started, 1e-9) * 60

    def describe(self) -> str:
        """The progress line's cluster part: workers and throughput."""
        n = len(self.threads())
        return f"{n} worker{'s' * (n != 1)}, {self.rate():.1f} snippets/min"

    # -- the library's environment

    def expected(self, names: Iterable[str], interpreter: str | None) -> Environment:
        """The library's environment (``interpreter``, default this one) for ``names``."""
        from .sandbox.probe import installed_versions, python_version

        wanted = sorted(set(names) - set(self._expected))
        if wanted:
            self._expected.update(installed_versions(wanted, interpreter) or dict.fromkeys(wanted))
        if interpreter not in self._python:
            self._python[interpreter] = python_version(interpreter)
        return Environment(python=self._python[interpreter],
                           packages={n: self._expected.get(n) for n in names})

    # -- validation

    def batches(self, jobs: Sequence[tuple[Snippet, list[str]]], workers: int) -> list[list[int]]:
        """Indices of ``jobs`` grouped per package, cut so every worker thread gets work."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (s, _) in enumerate(jobs):
            groups.setdefault(tuple(sorted(s.requirements)), []).append(i)
        size = max(1, min(self.batch_max, -(-len(jobs) // max(1, 2 * workers))))
        return [idx[k:k + size] for _, idx in sorted(groups.items()) for k in range(0, len(idx), size)]

    def ship(self, checkout: tuple[Any, str] | None) -> tuple[Any, str | None]:
        """The ``(root, commit)`` checkout as a Dask future of its ``git archive`` (sent to a
        worker once, then shared between workers), and the root it replaces; (None, None) when
        there is nothing to ship or it is too big (workers then need a shared file system)."""
        if checkout is None or not checkout[1]:
            return None, None
        root, commit = str(checkout[0]), checkout[1]
        key = (root, commit)
        if key not in self._archives:
            data = _git_archive(root, commit)
            self._archives[key] = self.client.scatter(data, hash=False) if data else None
        future = self._archives[key]
        return (future, root) if future is not None else (None, None)

    def validate_many(self, jobs: Sequence[tuple[Snippet, list[str]]], *, settings: Any = None,
                      checkout: tuple[Any, str] | None = None) -> Iterator[tuple[Snippet, Validation | Exception]]:
        """Validate ``(snippet, python_path)`` jobs on the cluster; yields each result as it arrives.

        ``checkout`` (root folder, commit) is shipped to the workers, and path
        entries inside it point into their copy.
        """
        from distributed import as_completed

        if not jobs:
            return
        if self.client.status != "running":
            raise ClusterError(f"lost the Dask scheduler at {self.address} ({self.client.status})")
        tick = time.perf_counter()
        archive, root = self.ship(checkout)

        def mapped(path: list[str]) -> list[str]:
            if root is None:
                return list(path)
            return [CHECKOUT + "/" + os.path.relpath(p, root) if os.path.commonpath([p, root]) == root else p
                    for p in path]

        interpreter = getattr(settings, "interpreter", None)
        expected = self.expected({n for s, _ in jobs for n in s.requirements}, interpreter)
        threads = self.threads(max_age=0)
        pending = self.batches(jobs, sum(threads.values()) or 1)
        pending.reverse()  # pop() from the end keeps the package order
        running = as_completed(loop=self.client.loop)
        futures: dict[Any, list[int]] = {}
        if self.started is None:
            self.started = time.monotonic()

        def submit_more() -> None:
            limit = max(2, self.in_flight_per_thread * (sum(self.threads().values()) or 1))
            while pending and len(futures) < limit:
                idx = pending.pop()
                tasks = [Task(snippet_id=jobs[i][0].id, revision=jobs[i][0].revision, code=jobs[i][0].code,
                              python_path=mapped(jobs[i][1]), requirements=dict(jobs[i][0].requirements))
                         for i in idx]
                future = self.client.submit(run_batch, tasks, settings, expected, self.generation, archive,
                                            pure=False, retries=1)
                futures[future] = idx
                running.add(future)
            self.peak_in_flight = max(self.peak_in_flight, len(futures))

        submit_more()
        self.busy_seconds += time.perf_counter() - tick
        try:
            for future in running:
                tick = time.perf_counter()
                idx = futures.pop(future)
                results: dict[str, Validation | Exception] = {}
                try:
                    for sid, _revision, data in future.result():
                        results[sid] = hold(Validation(**_pick(Validation, data)),
                                            data.get("figure_data") or {})
                except Exception as exc:  # lost more often than allowed, or the task broke
                    results = {jobs[i][0].id: exc for i in idx}
                submit_more()
                out = []
                for i in idx:
                    s = jobs[i][0]
                    got = results.get(s.id) or RuntimeError("the worker returned no result")
                    if isinstance(got, Validation):
                        got = self.check(s, got, expected, interpreter)
                    out.append((s, got))
                self.busy_seconds += time.perf_counter() - tick
                for item in out:
                    self.done += 1
                    yield item
        finally:
            for future in list(futures):
                future.cancel()

    def check(self, s: Snippet, v: Validation, expected: Environment, interpreter: str | None) -> Validation:
        """``v`` unless the versions the snippet imported on the worker differ from the library's
        environment; then the same record as ``skipped`` with the difference as the reason."""
        if v.status == "skipped":
            return v
        imported = self.expected(v.packages, interpreter)
        found = Environment(python=v.python_version or expected.python, packages=dict(v.packages))
        diff = differences(Environment(python=expected.python, packages=imported.packages), found, v.packages)
        if not diff:
            return v
        where = f"{v.host} ({v.worker})" if v.worker else str(v.host)
        return dataclasses.replace(v, status="skipped",
                                   reason=f"{MISMATCH}{where}: " + "; ".join(diff) + f" (it {v.status} there)")


def _git_archive(root: str, commit: str, limit: int = ARCHIVE_MAX) -> bytes | None:
    """The tar of ``commit``'s tree, read at most ``limit`` bytes far: None when bigger or broken."""
    import subprocess

    try:
        proc = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        if size > limit:
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
    return b"".join(chunks) if size <= limit and code == 0 else None


def retry_mismatched(library: Any, source_id: str) -> int:
    """Snippets skipped for a worker's environment or a missing checkout become ``stale``
    (validated again by the next run, on whatever executor it uses); returns how many."""
    waiting = [s for s in library.all(include_retired=False, source=source_id, validation="skipped")
               if (s.validation.reason or "").startswith((MISMATCH, NO_CHECKOUT))]
    if not waiting:
        return 0
    with library.transaction():
        for s in waiting:
            v = dataclasses.replace(s.validation, status="stale",
                                    reason="validated again: the last run was on a differing cluster worker")
            library.set_validation(s.id, v, revision=s.revision)
    return len(waiting)
