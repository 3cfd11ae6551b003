"""Build hook: compile the TypeScript side panel into ``jupyter_codedistiller/labextension``.

hatch-jupyter-builder calls ``build`` during ``pip install .`` / ``pip install -e .``.
The build is skipped when the built extension is newer than every source file,
so reinstalls stay fast; a clean checkout always builds. Needs Node.js 20+ and
npm; the npm packages come from the registry (``npm ci`` against the lockfile).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUILT = HERE.parent / "jupyter_codedistiller" / "labextension"
SOURCES = ("src", "style", "schema", "package.json", "package-lock.json", "tsconfig.json")
log = logging.getLogger("jupyter_codedistiller.prebuild")


def newest_source_mtime() -> float:
    """The newest modification time among the extension's sources."""
    newest = 0.0
    for name in SOURCES:
        path = HERE / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


def is_current() -> bool:
    """Whether the built extension exists and is newer than its sources."""
    marker = BUILT / "package.json"
    return marker.is_file() and marker.stat().st_mtime >= newest_source_mtime()


def build(target_name: str, version: str, **_: Any) -> None:
    """Build the labextension unless it is already current."""
    if is_current():
        log.info("labextension is up to date in %s; not rebuilding", BUILT)
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("building the JupyterLab extension needs Node.js 20+ and npm on PATH")
    install = "install" if (HERE / "node_modules").is_dir() else "ci"
    subprocess.check_call([npm, install, "--no-audit", "--no-fund"], cwd=HERE)
    subprocess.check_call([npm, "run", "clean"], cwd=HERE)
    subprocess.check_call([npm, "run", "build:lib"], cwd=HERE)
    from jupyter_builder.federated_extensions import build_labextension

    build_labextension(str(HERE), logger=log)
    # The builder keeps old files' times; mark the build as newer than its sources.
    (BUILT / "package.json").touch()
