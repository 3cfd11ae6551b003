"""A real Dask cluster on 127.0.0.1 for tests: ``dask scheduler`` and ``dask worker`` subprocesses.

``LocalCluster(tmp)`` starts a scheduler on a free port; ``start_worker()``
adds a worker (``--no-nanny``, one thread, this tree on its path, so it
imports the code under test); ``kill(proc)`` SIGKILLs one; ``close()`` kills
everything it started. Waiting is on conditions with generous bounds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAIT = 180.0  # seconds: the machine may be loaded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = WAIT, every: float = 0.1):  # noqa: ANN001
    """Poll ``condition()`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class LocalCluster:
    """A scheduler and workers as separate processes, killed on ``close()``."""

    def __init__(self, tmp: Path, python: str = sys.executable) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.python = python
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.scheduler = self._spawn([self.python, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--dashboard-address", ":0",
                                      "--no-show"], "scheduler")
        wait_for(self._listening, f"the scheduler on port {self.port}")

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 - kept with the process
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(self.tmp), env=self.env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def _listening(self) -> bool:
        if self.scheduler.poll() is not None:
            raise AssertionError(f"the scheduler exited ({self.scheduler.returncode}): {self.logs()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def start_worker(self, name: str | None = None, wait: bool = True) -> subprocess.Popen:
        """A new ``dask worker`` (one thread, no nanny); waits until the scheduler counts it."""
        before = self.count()
        name = name or f"w{len(self.workers)}"
        proc = self._spawn([self.python, "-m", "dask", "worker", self.address, "--nthreads", "1",
                            "--no-nanny", "--name", name, "--local-directory", str(self.tmp / name),
                            "--dashboard-address", ":0"], f"worker-{name}")
        self.workers.append(proc)
        if wait:
            wait_for(lambda: self._alive(proc) and self.count() > before, f"worker {name} to join")
        return proc

    def _alive(self, proc: subprocess.Popen) -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"a process exited ({proc.returncode}): {self.logs()}")
        return True

    def count(self) -> int:
        """Workers the scheduler knows now."""
        from distributed import Client

        with Client(self.address, timeout=WAIT, set_as_default=False) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])

    def kill(self, proc: subprocess.Popen, group: bool = False) -> None:
        """SIGKILL one process (with ``group``, its sandbox children too; else they end on
        their own when they notice their supervisor is gone)."""
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=WAIT)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.kill(proc, group=True)
