"""The background distiller: one process per library that keeps it fresh on a schedule.

It holds an exclusive lock on ``<home>/daemon.lock`` (``flock``: the kernel
drops it when the process dies, even by SIGKILL, so a lock never sticks), runs
at low priority, refreshes every source each interval and publishes what it is
doing under the ``daemon`` progress key for the magic, the CLI and the panel.
Writes go through ``refresh``: one transaction per source, so a kill at any
moment leaves no half-written snippet; snippets left ``pending`` by a kill are
validated on the next pass.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import IO, Any

from .library import Library, LibraryError
from .model import ProgressEntry, utcnow

PROGRESS_KEY = "daemon"
LOCK_NAME = "daemon.lock"
CATCH_UP = 10.0  # seconds between passes while snippets still wait for validation


class DaemonRunning(LibraryError):
    """Another daemon already holds this library's lock."""


class DaemonLock:
    """An exclusive, non-blocking lock on one library, released when the process ends."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise DaemonRunning naming the process that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the daemon
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise DaemonRunning(
                f"a daemon is already running for this library (pid {holder}); not starting a second"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def holder_pid(home: Path) -> int | None:
    """The pid of the running daemon of the library in ``home``, or None if none runs."""
    import fcntl

    path = Path(home) / LOCK_NAME
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


class Daemon:
    """Refresh every source of one library each ``interval`` seconds until stopped."""

    def __init__(self, library: Library, *, interval: float = 3600.0, workers: int | None = None,
                 timeout: float | None = None, nice: int = 10, defaults: bool = True,
                 cluster: str | None = None) -> None:
        self.library = library
        self.cluster = cluster  # else the library's cluster setting, read every pass
        self.defaults = defaults
        self.interval = interval
        # Every core: the daemon and its sandboxes run niced, so the analyst's kernel comes first.
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.timeout = timeout
        self.nice = nice
        self.stop = threading.Event()
        self.lock = DaemonLock(library.path.parent)
        self.cycles = 0
        self._installed_left: int | None = None  # installed-file snippets waiting at the last held-back pass

    def _publish(self, **state: Any) -> None:
        entry = ProgressEntry(pid=os.getpid(), interval=self.interval, workers=self.workers, cycles=self.cycles,
                         **state)
        try:
            self.library.set_progress(PROGRESS_KEY, entry)
        except LibraryError:
            pass

    def cycle(self) -> dict[str, int]:
        """One pass over every source; returns the totals of the refresh."""
        from .distill.refresh import refresh
        from .distill.sandbox import SandboxSettings

        def progress(stage: str, done: int, total: int, detail: str, source: str = "") -> None:
            self._publish(state="refreshing", step=stage, done=done, total=total, detail=detail, source=source)
            if self.stop.is_set():
                raise KeyboardInterrupt

        if self.defaults:
            from .distill.defaults import ensure_default_sources

            added = ensure_default_sources(self.library)
            if added:
                self._publish(state="refreshing", step="defaults", done=len(added), total=len(added),
                              detail="default sources: " + ", ".join(s.id for s in added))
        settings = SandboxSettings(timeout=self.timeout) if self.timeout else None
        if any(not (s.last_commit or s.last_version) for s in self.library.sources()):
            # A new library: make every source searchable first (seconds), validate after (minutes).
            refresh(self.library, workers=self.workers, validate=False, progress=progress)
        self._publish(state="refreshing", step="start", done=0, total=len(self.library.sources()), detail="")
        report = refresh(self.library, workers=self.workers, settings=settings, progress=progress,
                         cluster=self._cluster(), upstream_layers=self._upstream_layers())
        self.cycles += 1
        totals = report.totals()
        self._publish(state="idle", step="sleeping", done=0, total=0, detail=report.summary(),
                      last_cycle=utcnow(), next_cycle_in=self.interval,
                      errors=report.errors)
        return totals

    def _upstream_layers(self) -> bool:
        """Whether this pass validates the upstream layers' extras (an sdist's gallery scripts, the
        slowest examples) too: not while snippets of installed files or git sources wait, so a new
        library's installed examples are all validated first, unless the last such pass got none
        of them done (then nothing is held back behind them)."""
        from .distill.refresh import waiting_split

        try:
            left = waiting_split(self.library)[0]
        except LibraryError:
            return True
        hold = bool(left) and (self._installed_left is None or left < self._installed_left)
        self._installed_left = left if hold else None
        return not hold

    def _cluster(self) -> str | None:
        """The Dask scheduler to validate on this pass, if any."""
        if self.cluster:
            return self.cluster
        from .settings import load_settings

        return load_settings(self.library.path.parent).cluster or None

    def _pause(self) -> float:
        """Seconds until the next pass: the interval, or a short catch-up while snippets wait."""
        try:
            waiting = self.library.building()
        except LibraryError:
            waiting = None
        return min(self.interval, CATCH_UP) if waiting and waiting["pending"] else self.interval

    def run(self, *, once: bool = False) -> None:
        """Take the lock, then refresh until stopped (or once); raises DaemonRunning if taken."""
        self.lock.acquire()
        try:
            if self.nice:
                try:
                    os.nice(self.nice)
                except OSError:
                    pass
            while not self.stop.is_set():
                try:
                    self.cycle()
                except KeyboardInterrupt:
                    break
                except Exception as exc:  # one bad pass must not end the daemon
                    self._publish(state="error", step="failed", done=0, total=0,
                                  detail=f"{type(exc).__name__}: {exc}"[:500], last_error=utcnow())
                if once:
                    break
                self.stop.wait(self._pause())
        finally:
            self._publish(state="stopped", step="stopped", done=0, total=0, detail="", stopped=utcnow())
            self.lock.release()


def run_forever(library: Library, *, interval: float, workers: int | None = None,
                timeout: float | None = None, once: bool = False, defaults: bool = True,
                cluster: str | None = None) -> None:
    """Run a daemon in this process until SIGTERM / SIGINT (or one pass with ``once``).

    An empty library first gets the default sources unless ``defaults`` is false;
    ``cluster`` (a Dask scheduler address) validates there instead of here.
    """
    daemon = Daemon(library, interval=interval, workers=workers, timeout=timeout, defaults=defaults,
                    cluster=cluster)

    def stop(signum: int, frame: Any) -> None:
        daemon.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.run(once=once)
