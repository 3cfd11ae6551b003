"""How long ``%load_ext jupyter_codedistiller`` takes, beside IPython's ``%load_ext autoreload``.

Each sample is a fresh Python process (so no module is already imported):
it creates an ``InteractiveShell`` and times only the ``load_ext`` call. The
two extensions alternate, sample by sample, so both see the same machine
load. For scale it also prints what the first ``%distill status`` costs
(opening an existing library, importing the library code), which is paid on
first use rather than at load. Byte-code caches are written by a warm-up
sample first, as ``pip install`` does; without them Python compiles
``magics.py`` on every start, which adds about 4 ms.

    .venv/bin/python benchmarks/load_ext.py [--samples 20]

Target (issue 4): our median at most 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
name = sys.argv[1]
t0 = time.perf_counter()
shell.run_line_magic("load_ext", name)
load = time.perf_counter() - t0
first = None
if name == "jupyter_codedistiller":
    assert "distill" in shell.magics_manager.magics["line"]
    from IPython.utils.capture import capture_output
    with capture_output():
        t0 = time.perf_counter()
        shell.run_line_magic("distill", "status")
        first = time.perf_counter() - t0
print(json.dumps({"load": load, "first": first}))
"""

OURS, THEIRS = "jupyter_codedistiller", "autoreload"


def sample(name: str, env: dict[str, str]) -> dict[str, float | None]:
    out = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def describe(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{label:<36} median {statistics.median(ms):7.1f} ms   min {min(ms):6.1f}   "
            f"max {max(ms):6.1f}   (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CODEDISTILLER_HOME=tmp)
        # as after `pip install`, modules load from byte-code: let the warm-up write it
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from jupyter_codedistiller.library import Library

        Library.open(tmp).close()  # the first command opens an existing library
        sample(OURS, env)  # warm the byte-code caches and the disk cache
        sample(THEIRS, env)
        ours, theirs, first = [], [], []
        for _ in range(args.samples):
            a = sample(OURS, env)
            ours.append(a["load"])
            first.append(a["first"])
            theirs.append(sample(THEIRS, env)["load"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; fresh process per sample")
    print(describe("%load_ext jupyter_codedistiller", ours))
    print(describe("%load_ext autoreload", theirs))
    print(describe("first %distill status (after load)", first))
    median = statistics.median(ours) * 1000
    print(f"target: median <= 50 ms -> {'met' if median <= 50 else 'NOT met'} ({median:.1f} ms)")


if __name__ == "__main__":
    main()
