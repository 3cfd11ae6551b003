"""Judging a run: what the code visibly needs, and why a run that did not pass is the environment's doing."""

from __future__ import annotations

import ast
import re
import signal
import threading
from collections.abc import Sequence

from .settings import TAIL_CHARS

_parse_lock = threading.Lock()


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


def static_needs(code: str) -> set[str]:
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


def final_exception(stderr: str) -> str:
    """The last ``SomeError: message`` line of a traceback, else the last unindented line."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    for line in reversed(lines):
        if not line[0].isspace() and not line.startswith("Traceback"):
            return line
    return ""


def skip_reason(stderr: str, static: set[str], timed_out: bool,
                 missing: Sequence[str]) -> str | None:
    """Why a run that did not pass is the environment's doing, or None if it is the code's.

    Evidence from the run comes first; what the code visibly needs (``static``)
    decides only when the run itself names nothing more specific.
    """
    final = final_exception(stderr)
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
        from ..imports import normalise

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


def tail(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")[-TAIL_CHARS:]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# Without namespaces nothing contains a socket or a process that leaves the run's group.
_ESCAPING_MODULES = frozenset({"socket", "socketserver", "ssl", "asyncio", "multiprocessing", "subprocess",
                               "pty", "ctypes", "cffi", "http", "urllib", "urllib3", "requests", "httpx",
                               "ftplib", "smtplib", "telnetlib", "xmlrpc", "concurrent", "signal"})
_ESCAPING_CALLS = frozenset({"fork", "forkpty", "setsid", "setpgid", "daemon", "system", "popen",
                             "spawnl", "spawnle", "spawnlp", "spawnv", "spawnve", "spawnvp", "posix_spawn",
                             "posix_spawnp", "execv", "execve", "execvp", "execl", "execlp", "kill", "killpg"})


def escapes_without_namespaces(code: str) -> str | None:
    """What in ``code`` could open a socket or leave a process behind, when nothing contains it."""
    try:
        with _parse_lock:
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.partition(".")[0] in _ESCAPING_MODULES:
                    return f"imports {name}"
        elif isinstance(node, ast.Attribute) and node.attr in _ESCAPING_CALLS:
            return f"calls {node.attr}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "__import__", "exec", "eval", "compile"):
            return f"calls {node.func.id}"
    return None
