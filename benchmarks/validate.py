"""Validation benchmark: the same real examples validated cold and warm, in one run.

Distils the installed lifelines, statsmodels, scikit-learn and scipy (no
validation) into a temporary library, takes a fixed sample of their docstring
and documentation examples (the first N per package by snippet id), validates it
cold (a fresh interpreter per snippet, one at a time) and warm (``validate_many``
over all of them in one batch: ``--workers`` warm interpreters, each a full
sandbox, forking a child per snippet from one shared queue), and prints both
times, snippets/min, and the cost per snippet as a ratio to one cold
``python -c "import <package>"`` measured here (median of three).
Lists every snippet whose outcome (passed / failed / timeout / skipped) differs.

``--default`` instead runs the daemon on a new, empty library, as ``make lab``
starts it (every curated package installed here, with the upstream sdists it
reads; every core; the daemon's passes), until nothing waits for validation (or,
with ``--until installed``, every installed-file snippet is validated), and prints
when the library was searchable, how much was validated in the first minute, when
each daemon pass ended, when every installed-file snippet was validated, when everything was,
and where the time went: the examples' own run time per layer (installed files,
upstream sdist) and at the time limit.

    .venv/bin/python benchmarks/validate.py [--per-package 25] [--timeout 60]
    .venv/bin/python benchmarks/validate.py --default [--workers 2] [--until installed]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_codedistiller.distill import sandbox, sources  # noqa: E402
from jupyter_codedistiller.distill.refresh import refresh, waiting_split  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402

# Distribution -> the module its examples import it as (statsmodels' documented entry point is .api).
PACKAGES = {"lifelines": "lifelines", "statsmodels": "statsmodels.api", "scikit-learn": "sklearn", "scipy": "scipy"}


def import_seconds(module: str) -> float:
    """One cold ``python -c "import <module>"`` (median of three)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env={**os.environ,
                       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sample(lib: Library, per_package: int) -> dict[str, list]:
    by_package: dict[str, list] = {}
    for s in lib.all():
        pkg = s.source.package
        if pkg in PACKAGES and s.origin.kind in ("verbatim", "assembled"):
            by_package.setdefault(pkg, []).append(s)
    return {pkg: sorted(found, key=lambda s: s.id)[:per_package] for pkg, found in sorted(by_package.items())}


def default_mode(args: argparse.Namespace) -> None:
    """Run the daemon on a new, empty library, as ``make lab`` starts it, until nothing waits."""
    import threading

    from jupyter_codedistiller.daemon import Daemon

    with contextlib.ExitStack() as stack:
        if args.keep:  # a new, empty folder, left for a look at the validations afterwards
            home = args.keep
            Path(home).mkdir(parents=True)
        else:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="cd-validate-default-"))
        lib = Library(Path(home) / "library.db")
        daemon = Daemon(lib, workers=args.workers, timeout=args.timeout)
        runner = threading.Thread(target=daemon.run, daemon=True)
        start = time.perf_counter()
        runner.start()
        watch = Library(Path(home) / "library.db")  # this thread's own connection
        marks: dict[str, float] = {}
        first_minute = None
        last_print = 0.0
        passes = 0
        while runner.is_alive():
            time.sleep(2)
            took = time.perf_counter() - start
            if daemon.cycles > passes:
                passes = daemon.cycles
                print(f"  pass {passes} ended at {took / 60:.1f} min, waiting: installed %d, upstream %d"
                      % waiting_split(watch), flush=True)
            building = watch.building()
            if not watch.sources() or (building and building["sources_waiting"]):
                continue  # not all distilled yet
            counts = watch.validation_counts()
            total = sum(counts.values())
            left_installed, left_upstream = waiting_split(watch)
            if "searchable" not in marks:
                marks["searchable"] = took
                already = total - left_installed - left_upstream  # skipped as extracted: never ran
                print(f"searchable {total} snippets of {len(watch.sources())} packages at {took:.0f} s "
                      f"(waiting: {dict(sorted(watch.waiting_by_layer().items()))})", flush=True)
            if first_minute is None and took >= marks["searchable"] + 60:
                first_minute = total - left_installed - left_upstream - already
                ran = {}
                for s in watch.all():
                    if s.validation.mode:  # it ran (not skipped at extraction, not waiting)
                        ran.setdefault(s.source.package, set()).add(s.validation.status)
                passed = sorted(p for p, statuses in ran.items() if "passed" in statuses)
                print(f"  first minute of validation: {first_minute} validated, "
                      f"{counts.get('passed', 0)} passed ({already} skipped as extracted before); "
                      f"{len(passed)} of {len(watch.sources())} packages have a snippet that ran and "
                      f"passed: {', '.join(passed)}", flush=True)
            if not left_installed and "installed" not in marks:
                marks["installed"] = took
                print(f"installed  every installed-file snippet validated at {took / 60:.1f} min "
                      f"(target <= 15 min); {left_upstream} upstream-layer snippets wait", flush=True)
                if args.until == "installed":
                    daemon.stop.set()
                    break
            if not left_installed and not left_upstream:
                marks["all"] = took
                print(f"all        every snippet validated at {took / 60:.1f} min: {counts}", flush=True)
                daemon.stop.set()
                break
            if took - last_print >= 60:
                last_print = took
                print(f"  {took / 60:5.1f} min  waiting: installed {left_installed}, upstream {left_upstream}",
                      flush=True)
        runner.join()
        where_time(watch, args.workers, args.timeout)
        watch.close()
        lib.close()


def where_time(lib: Library, workers: int, timeout: float) -> None:
    """The examples' own run time by layer (installed files, upstream sdist) and the share of it
    spent at the time limit: the floor no sandbox can go under without changing outcomes."""
    own: dict[str, list[float]] = {}
    limited: list[float] = []
    for s in lib.all():
        layer = s.source.layer or "installed"
        own.setdefault(layer, []).append(s.validation.duration or 0.0)
        if s.validation.status == "timeout":
            limited.append(s.validation.duration or 0.0)
    for layer, times in sorted(own.items()):
        print(f"  {layer:<10} {len(times):>5} snippets, own run time {sum(times) / 60:6.1f} min "
              f"({sum(times) / workers / 60:.1f} min on {workers} interpreters)")
    print(f"  {len(limited)} snippets ran into the {timeout:g} s (or CPU) limit: {sum(limited) / 60:.1f} min of it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-package", type=int, default=25, help="examples per package (4 packages)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="warm interpreters side by side (--default: the daemon's workers)")
    ap.add_argument("--default", action="store_true", help="time the daemon validating the default library")
    ap.add_argument("--until", choices=("all", "installed"), default="all",
                    help="with --default: stop once everything, or every installed-file snippet, is validated")
    ap.add_argument("--keep", help="with --default: build the library in this new folder and leave it there")
    args = ap.parse_args()
    if args.keep and Path(args.keep).exists():
        ap.error(f"--keep {args.keep}: the folder exists; give a new one (the daemon starts on an empty library)")
    if args.default:
        default_mode(args)
        return
    settings = sandbox.SandboxSettings(timeout=args.timeout)
    print(f"sandbox    {sandbox.isolation_available()}; warm: {sandbox.warm_available() or 'available'}")
    with tempfile.TemporaryDirectory(prefix="cd-validate-") as home:
        lib = Library(Path(home) / "library.db")
        for name in PACKAGES:
            sources.add(lib, f"pkg:{name}")
        start = time.perf_counter()
        refresh(lib, validate=False)
        print(f"extract    {lib.count()} snippets in {time.perf_counter() - start:.0f} s")
        chosen = sample(lib, args.per_package)
        lib.close()
    total = sum(len(v) for v in chosen.values())
    print(f"sample     {total} examples: " + ", ".join(f"{p} {len(v)}" for p, v in chosen.items()))
    rows, outcomes, cold = [], {}, {}
    tasks = {pkg: [sandbox.Task(s.code, (), dict(s.requirements), s.id) for s in snippets]
             for pkg, snippets in chosen.items()}
    for pkg, batch in tasks.items():
        ref = import_seconds(PACKAGES[pkg])
        start = time.perf_counter()
        cold.update({t.key: sandbox.validate(t.code, settings=settings, requirements=t.requirements) for t in batch})
        rows.append((pkg, len(batch), ref, time.perf_counter() - start))
    # Warm: every package's examples in one batch (one environment), as refresh sends a source's.
    everything = [t for batch in tasks.values() for t in batch]
    start = time.perf_counter()
    warm = {t.key: v for t, v in sandbox.validate_many(everything, settings=settings, workers=args.workers)}
    warm_s = time.perf_counter() - start
    package_of = {t.key: pkg for pkg, batch in tasks.items() for t in batch}
    for key, v in warm.items():
        if v.mode_reason:
            print(f"  cold     {package_of[key]}: {v.mode_reason}")
        outcomes[key] = (package_of[key], cold[key].status, v.status, v.mode)
    print("reference  one cold python -c 'import <module>' (median of 3): "
          + ", ".join(f"{p} -> {PACKAGES[p]}" for p in chosen))
    print(f"warm       one batch of all {len(everything)}, {args.workers} warm interpreters (each a full sandbox) "
          "on one shared queue")
    print(f"{'package':<13}{'n':>4}{'import s':>10}{'cold s':>9}{'cold/min':>10}{'cold ratio':>12}"
          f"{'own s':>8}{'own ratio':>11}  warm modes")
    for pkg, n, ref, cold_s in rows:
        own = sum(warm[t.key].duration or 0.0 for t in tasks[pkg])  # the examples' own run time, in the children
        modes = sorted({warm[t.key].mode or "" for t in tasks[pkg]})
        print(f"{pkg:<13}{n:>4}{ref:>10.2f}{cold_s:>9.1f}{60 * n / cold_s:>10.1f}{cold_s / n / ref:>12.2f}"
              f"{own:>8.1f}{own / n / ref:>11.2f}  {','.join(modes)}")
    n = sum(r[1] for r in rows)
    cold_t = sum(r[3] for r in rows)
    ref_mean = sum(r[2] * r[1] for r in rows) / n
    own_t = sum(v.duration or 0.0 for v in warm.values())
    print(f"{'all':<13}{n:>4}{ref_mean:>10.2f}{cold_t:>9.1f}{60 * n / cold_t:>10.1f}{cold_t / n / ref_mean:>12.2f}"
          f"{own_t:>8.1f}{own_t / n / ref_mean:>11.2f}")
    print(f"warm all   {warm_s:.1f} s, {60 * n / warm_s:.1f}/min, ratio {warm_s / n / ref_mean:.2f} "
          f"(target warm <= 0.25); cold ratio {cold_t / n / ref_mean:.2f}")
    print("           own s: the examples' own run time in the warm children (summed over interpreters running")
    print("           side by side); own ratio: that per snippet over the import, the floor on one interpreter")
    tally: dict[str, int] = {}
    for _pkg, c, _w, _m in outcomes.values():
        tally[c] = tally.get(c, 0) + 1
    print("outcomes   " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    differ = [(k, *v) for k, v in sorted(outcomes.items()) if v[1] != v[2]]
    print(f"identical  {n - len(differ)}/{n} outcomes cold vs warm")
    for key, pkg, c, w, m in differ:
        print(f"  differs  {pkg} {key}: cold {c}, warm {w} ({m})")


if __name__ == "__main__":
    main()
