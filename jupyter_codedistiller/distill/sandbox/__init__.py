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

import os
import shutil
import signal
from collections.abc import Mapping, Sequence

from ...model import Validation, utcnow
from .. import capture
from .distributions import missing, used_distributions
from .probe import Info, Plan, describe, interpreter_info, isolation_available, plan_for
from .reasons import final_exception, signal_name, skip_reason, static_needs, tail
from .settings import ISOLATION_METHODS, SandboxSettings, isolates_network, weakest_isolation
from .supervise import Run, execute

__all__ = [
    "ISOLATION_METHODS",
    "SandboxSettings",
    "isolates_network",
    "isolation_available",
    "validate",
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
    run = execute(code, plan, settings, interpreter, info, python_path)
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
