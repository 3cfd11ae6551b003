"""Cluster benchmark: validation throughput on a Dask cluster beside the local pool, in one run.

Builds a repository of N small example scripts, extracts it once per library,
then times validation only (snippets/min) with the local pool (the reference,
``--local-workers`` threads), and through a real ``dask scheduler`` with 1 and
then 2 ``dask worker`` processes (one thread each) on 127.0.0.1. For the
cluster runs it also prints the coordinator's overhead per task: the
executor's own time (batching, submitting, checking the records), the
coordinator process's CPU time per snippet (Dask client included), and the
library write per result (the single writer's load). Runs in temporary
folders; touches nothing else.

    .venv/bin/python benchmarks/cluster.py [--snippets N] [--local-workers N] [--module pandas]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_codedistiller.distill import cluster as cluster_module  # noqa: E402
from jupyter_codedistiller.distill import sources  # noqa: E402
from jupyter_codedistiller.distill.refresh import refresh  # noqa: E402
from jupyter_codedistiller.distill.sandbox import SandboxSettings  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402
from jupyter_codedistiller.model import Validation, utcnow  # noqa: E402
from tests.daskcluster import LocalCluster  # noqa: E402
from tests.gitrepos import MIT_LICENSE, file_url, make_repo  # noqa: E402

SETTINGS = SandboxSettings(timeout=60)


def repository(path: Path, n: int, module: str | None) -> str:
    files = {"LICENSE": MIT_LICENSE}
    extra = f"import {module}\n" if module else ""
    for i in range(n):
        files[f"examples/cohort_{i:03d}.py"] = (
            f'"""Cohort {i}: a toy survival summary."""\nimport math\nimport statistics\n{extra}\n'
            f"times = [{i + 1}, {i + 4}, {i + 9}]\n"
            "print(statistics.median(times), sum(math.log1p(t) for t in times))\n")
    make_repo(path, files)
    return file_url(path)


class Spy(cluster_module.ClusterExecutor):
    """The real executor, remembered so its counters can be read after the refresh."""

    last: Spy | None = None

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        Spy.last = self


def timed_validation(tmp: Path, url: str, label: str, **options) -> dict:  # noqa: ANN003
    """Extract without validating, then time the validation of every snippet."""
    lib = Library(tmp / label / "library.db")
    try:
        sources.add(lib, url)
        refresh(lib, validate=False)
        n = len(list(lib.all()))
        cpu, wall = time.process_time(), time.perf_counter()
        report = refresh(lib, settings=SETTINGS, **options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        t = report.totals()
        assert t["pending"] == 0 and not report.errors, report.summary()
        statuses = sorted({s.validation.status for s in lib.all()})
        run_s = statistics.median(s.validation.duration or 0 for s in lib.all())
        return {"label": label, "n": n, "seconds": wall, "per_min": n / wall * 60, "cpu_ms": cpu / n * 1000,
                "run_s": run_s,
                "statuses": statuses, "busy_ms": (Spy.last.busy_seconds / n * 1000) if options.get("cluster") else None}
    finally:
        lib.close()


def write_ms(tmp: Path, n: int) -> float:
    """Median time of one result write (``set_validation``, one transaction) into a library."""
    lib = Library(tmp / "writes" / "library.db")
    try:
        from tests.conftest import make_snippet

        ids = [lib.put(make_snippet(f"write {i}", validation="pending")).id for i in range(n)]
        times = []
        for sid in ids:
            v = Validation(status="passed", when=utcnow(), duration=0.4, interpreter=sys.executable,
                           python_version="3.11", packages={"pandas": "2.2.0"}, isolation="rlimits-only",
                           exit_code=0, stdout_tail="x" * 200, host="node", worker="tcp://10.0.0.1:40000")
            t0 = time.perf_counter()
            lib.set_validation(sid, v)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000
    finally:
        lib.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=24)
    parser.add_argument("--local-workers", type=int, default=2)
    parser.add_argument("--module", help="an installed module every snippet also imports (e.g. pandas)")
    args = parser.parse_args()
    cluster_module.ClusterExecutor = Spy  # refresh() looks the class up when it connects
    with tempfile.TemporaryDirectory(prefix="codedistiller-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        url = repository(tmp / "lab" / "cohorts", args.snippets, args.module)
        rows = [timed_validation(tmp, url, f"local pool ({args.local_workers} threads)",
                                 workers=args.local_workers)]
        dask = LocalCluster(tmp / "dask")
        try:
            dask.start_worker("w0")
            rows.append(timed_validation(tmp, url, "cluster, 1 worker", cluster=dask.address))
            dask.start_worker("w1")
            rows.append(timed_validation(tmp, url, "cluster, 2 workers", cluster=dask.address))
        finally:
            dask.close()
        write = write_ms(tmp, 200)
    what = f"importing {args.module}" if args.module else "standard library only"
    print(f"validation of {args.snippets} snippets ({what}; each a fresh sandboxed interpreter), machine shared:")
    for r in rows:
        extra = (f"  coordinator: {r['busy_ms']:.2f} ms executor + {r['cpu_ms']:.1f} ms CPU per snippet"
                 if r["busy_ms"] is not None else f"  ({r['cpu_ms']:.1f} ms CPU per snippet in this process)")
        print(f"  {r['label']:<26} {r['seconds']:6.1f} s  {r['per_min']:6.1f} snippets/min  "
              f"(median run {r['run_s']:.2f} s)  "
              f"{','.join(r['statuses'])}{extra}")
    print(f"  one result write (set_validation, one transaction): {write:.2f} ms median")


if __name__ == "__main__":
    main()
