"""What the API handlers stand on: the open library, a thread pool, and child processes.

Library calls block (SQLite waits on a busy database), so they run on a small
thread pool, never on the server's event loop. Anything that touches
repositories (registering a source, refreshing) runs the ``codedistiller``
command line in a child process: repository code is untrusted and must never
run inside the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..library import Library
from ..model import utcnow

T = TypeVar("T")

ADD_TIMEOUT_S = 600
LOG_TAIL_BYTES = 8 * 1024
LOG_TAIL_LINES = 20


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def cli_command(home: Path, *args: str) -> list[str]:
    """The argv that runs ``codedistiller --home HOME ARGS...`` with this interpreter."""
    return [sys.executable, "-m", "jupyter_codedistiller.cli", "--home", str(home), *args]


def cli_error_line(stderr: str) -> str:
    """The one-line message of a failed ``codedistiller`` run, without the program prefix."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "the command failed without a message"
    last = lines[-1]
    for prefix in ("codedistiller: error: ", "codedistiller: "):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


@dataclass
class RefreshJob:
    """One ``codedistiller refresh`` child process started through the API."""

    id: int
    pid: int
    sources: list[str]
    validate: bool
    started: str
    log: str
    finished: str | None = None
    exit_code: int | None = None

    @property
    def state(self) -> str:
        if self.exit_code is None:
            return "running"
        return "finished" if self.exit_code == 0 else "failed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("log")
        data["state"] = self.state
        data["log_tail"] = log_tail(Path(self.log))
        return data


def log_tail(path: Path) -> list[str]:
    """The last lines of a log file (bounded read), or an empty list."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = text.splitlines()
    if size > LOG_TAIL_BYTES and lines:
        lines = lines[1:]  # the first line read is probably cut
    return lines[-LOG_TAIL_LINES:]


class LibraryService:
    """The library behind the API: opened once, called on a thread pool; child processes."""

    def __init__(
        self,
        home: Path,
        root_dir: str | None = None,
        max_body_bytes: int = 64 * 1024,
        log: logging.Logger | None = None,
    ) -> None:
        self.home = Path(home)
        self.root_dir = Path(root_dir).resolve() if root_dir else None
        self.max_body_bytes = max_body_bytes
        self.log = log or logging.getLogger(__name__)
        self._lib: Library | None = None
        self._open_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="codedistiller")
        self._job: RefreshJob | None = None
        self._jobs = 0
        self._reapers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ the library

    def library(self) -> Library:
        """The library, opened on first use (creating an empty one if the home has none)."""
        with self._open_lock:
            if self._lib is None:
                self._lib = Library.open(self.home)
            return self._lib

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(library, *args, **kwargs)`` on the thread pool; exceptions pass through."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: fn(self.library(), *args, **kwargs)
        )

    # ------------------------------------------------------------ sources

    def source_argument(self, source: str) -> str:
        """``source`` as the command line should get it; refuses what the API must not reach.

        Read by ``sources.classify`` as the CLI and the magic read it. Beyond that reading,
        the API's own rule: a local path (or ``file://`` URL) must lie inside the Jupyter
        root directory or the library home; relative paths are taken from the Jupyter root.
        """
        from ..distill.sources import SourceError, classify

        base = self.root_dir or Path.cwd()
        try:
            found = classify(source, base=base)
        except SourceError as exc:
            raise ServiceError(400, str(exc)) from None
        if found.path is None:
            return found.url
        path = found.path.resolve()
        allowed = [p for p in (self.root_dir, self.home.resolve()) if p]
        if not any(path == p or p in path.parents for p in allowed):
            raise ServiceError(
                400, "a local source must lie inside the Jupyter root directory or the library home"
            )
        if not path.is_dir():
            raise ServiceError(400, f"no folder {source.strip()!r} in the Jupyter root directory")
        return str(path)

    async def add_source(self, source: str, name: str | None, ref: str | None = None) -> dict[str, Any]:
        """Register a source by running ``codedistiller add`` in a child process."""
        argument = self.source_argument(source)
        before = {s.id for s in await self.call(lambda lib: lib.sources(include_removed=True))}
        args = (["add"] + (["--name", name] if name else []) + (["--ref", ref] if ref else [])
                + ["--", argument])
        proc = await asyncio.create_subprocess_exec(
            *cli_command(self.home, *args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(self.home),
            env=self._child_env(),
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), ADD_TIMEOUT_S)
        except asyncio.TimeoutError:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ServiceError(504, f"adding the source took longer than {ADD_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            raise ServiceError(400, cli_error_line(err.decode("utf-8", "replace")))

        def added(lib: Library) -> dict[str, Any]:
            new = [s for s in lib.sources(include_removed=True) if s.id not in before]
            if new:
                return new[0].to_dict()
            if name:
                return lib.source(name).to_dict()
            raise ServiceError(500, "the source was added but cannot be found in the library")

        return await self.call(added)

    # ------------------------------------------------------------ refresh

    @property
    def refresh_job(self) -> RefreshJob | None:
        return self._job

    async def start_refresh(self, sources: list[str], validate: bool = True) -> RefreshJob:
        """Start ``codedistiller refresh`` in a child process; one at a time per server."""
        if self._job is not None and self._job.state == "running":
            raise ServiceError(409, f"a refresh is already running (pid {self._job.pid})")
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / "refresh.log"
        if log_path.exists():
            os.replace(log_path, logs / "refresh.1.log")
        args = ["refresh", *([] if validate else ["--no-validate"]), "--", *sources]
        with open(log_path, "wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *cli_command(self.home, *args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.home),
                env=self._child_env(),
                start_new_session=True,
            )
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
        self._jobs += 1
        job = RefreshJob(id=self._jobs, pid=proc.pid, sources=list(sources), validate=validate,
                         started=utcnow(), log=str(log_path))
        self._job = job
        task = asyncio.ensure_future(self._reap(job, proc))
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)
        self.log.info("codedistiller: refresh started (pid %s) for %s", proc.pid,
                      ", ".join(sources) or "all sources")
        return job

    async def _reap(self, job: RefreshJob, proc: asyncio.subprocess.Process) -> None:
        job.exit_code = await proc.wait()
        job.finished = utcnow()
        self.log.info("codedistiller: refresh (pid %s) ended with exit code %s", job.pid,
                      job.exit_code)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CODEDISTILLER_HOME"] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_daemon(self, interval: int, cluster: str = "") -> int | None:
        """Start ``codedistiller daemon`` as a low-priority child; returns its pid.

        If another daemon already holds this library's lock the child exits at
        once saying so (see its log), and that daemon keeps the library fresh.
        """
        import subprocess

        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "daemon.log", "ab") as log_file:
            proc = subprocess.Popen(
                cli_command(self.home, "daemon", "--interval", str(interval),
                            *(["--cluster", cluster] if cluster else [])),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=str(self.home), env=self._child_env(), start_new_session=True,
            )
        self._daemon = proc
        self.log.info("codedistiller: background distiller started (pid %s, every %s s)", proc.pid, interval)
        return proc.pid

    def shutdown(self) -> None:
        """Stop a running refresh and the daemon (their writes are transactional); close the library."""
        job = self._job
        if job is not None and job.exit_code is None:
            _kill_group(job.pid, signal.SIGTERM)
        daemon = getattr(self, "_daemon", None)
        if daemon is not None and daemon.poll() is None:
            _kill_group(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=10)
            except Exception:
                _kill_group(daemon.pid, signal.SIGKILL)
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._open_lock:
            if self._lib is not None:
                with contextlib.suppress(Exception):
                    self._lib.close()
                self._lib = None


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
