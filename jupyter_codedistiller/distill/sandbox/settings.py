"""How the sandbox runs a snippet: its settings and the constants the other modules share."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

ISOLATION_METHODS = ("auto", "unshare", "bwrap", "none")
TAIL_CHARS = 2000
SCRIPT_NAME = "snippet.py"
MIB = 1024 * 1024
REPORT_LIMIT = 64 * 1024  # what the supervisor reads of the trusted report pipe
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
    tree_memory_mb: int | None = None  # over all processes of a run together; None: 2 * memory_mb
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

    @property
    def tree_bound(self) -> int:
        """Bytes all processes of one run may hold together (proportional set size)."""
        return (self.tree_memory_mb or 2 * self.memory_mb) * 1024 * 1024


def isolates_network(isolation: str | None) -> bool:
    """True when a recorded isolation level says the child had no network."""
    return bool(isolation) and isolation.split("+", 1)[0].endswith("-net")


def isolation_strength(isolation: str | None) -> int:
    """How much a recorded isolation level contains, for ordering: more is stronger."""
    if not isolation:
        return -1
    parts = isolation.split("+")
    return (2 * isolates_network(isolation) + 2 * ("fs" in parts) + ("pid" in parts)
            + 2 * ("uid" in parts) + ("rlimits" in parts or isolation == "rlimits-only"))


def weakest_isolation(levels: Iterable[str | None]) -> str | None:
    """The weakest of recorded isolation levels (None when none is recorded)."""
    found = [lv for lv in levels if lv]
    return min(found, key=lambda lv: (isolation_strength(lv), lv)) if found else None
