"""One concurrent user: searches, flags and reviews for a fixed time through a real interface.

    python -m tests.hostile.worker --home HOME --seconds 10 --name w1 --kind cli|magic --ids A,B,C

``cli`` runs each command through ``codedistiller``'s ``main`` (what a
terminal user sees: exit code and standard error); ``magic`` through
``%distill`` in a real IPython InteractiveShell (what a notebook user sees: a
UsageError). Every flag and review the interface reported as done carries a
unique reason or note, so the caller can find each one in the library. The
last line printed is JSON: counts, those tokens, every error a user would
have seen, and the latency of each kind of operation.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shlex
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

QUERIES = ["median survival", "group sizes", "cohort", "kaplan meier", "summarise", "count",
           "print statistics", "tutorial", '"unbalanced', "NEAR(x"]


class Cli:
    def __init__(self) -> None:
        from jupyter_codedistiller.cli import main

        self.main = main

    def __call__(self, args: list[str]) -> str | None:
        """None when the command succeeded, else what the user saw."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stderr(err), redirect_stdout(out):
            code = self.main(args, out=out)
        if code != 0 or err.getvalue():
            return f"exit {code}: {err.getvalue().strip()}"
        return None


class Magic:
    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = InteractiveShell.instance()
        self.shell.extension_manager.load_extension("jupyter_codedistiller")
        self.shell.magics_manager.registry["DistillMagics"].widgets = "off"

    def __call__(self, args: list[str]) -> str | None:
        from IPython.core.error import UsageError
        from IPython.utils.capture import capture_output

        with capture_output():
            try:
                self.shell.run_line_magic("distill", shlex.join(args))
            except UsageError as exc:
                return f"UsageError: {exc}"
        return None


def run(kind: str, name: str, ids: list[str], seconds: float, seed: int) -> dict[str, Any]:
    interface = Cli() if kind == "cli" else Magic()
    rng = random.Random(seed)
    counts = {"search": 0, "flag": 0, "review": 0}
    flags: list[str] = []
    reviews: list[str] = []
    errors: list[str] = []
    latency: dict[str, list[float]] = {k: [] for k in counts}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        op = rng.choices(["search", "flag", "review"], weights=[2, 1, 1])[0]
        sid = rng.choice(ids)
        token = f"{name}-{n}"
        if op == "search":
            args = ["search", *rng.choice(QUERIES).split(), "--limit", "5"]
        elif op == "flag":
            args = ["flag", sid, "--reason", f"concurrency {token}", "--kind", "other"]
        else:
            args = ["review", sid, rng.choice(["--approve", "--reject"]), "--note", f"concurrency {token}"]
        started = time.monotonic()
        try:
            error = interface(args)
        except BaseException:  # a traceback: exactly what a user must never see
            error = "TRACEBACK " + traceback.format_exc()
        latency[op].append(time.monotonic() - started)
        if error is not None:
            errors.append(f"{' '.join(args)}: {error}")
            continue
        counts[op] += 1
        if op == "flag":
            flags.append(f"concurrency {token}")
        elif op == "review":
            reviews.append(f"concurrency {token}")
    return {"name": name, "kind": kind, "counts": counts, "flags": flags, "reviews": reviews,
            "errors": errors, "latency_max": {k: max(v, default=0.0) for k, v in latency.items()},
            "latency_sum": {k: sum(v) for k, v in latency.items()}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--home", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--name", required=True)
    p.add_argument("--kind", choices=("cli", "magic"), default="cli")
    p.add_argument("--ids", required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    os.environ["CODEDISTILLER_HOME"] = a.home
    os.environ["CODEDISTILLER_USER"] = a.name
    result = run(a.kind, a.name, a.ids.split(","), a.seconds, a.seed)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
