"""matplotlib's font list for cold runs: built once per interpreter, then copied into each run.

matplotlib builds ``fontlist-v<N>.json`` in its cache directory (the run's
``~/.cache/matplotlib``) on first import, about a quarter of a second, and will not
use a read-only one. So the list is built once per interpreter (and its installed
distributions) by our own builder program, run in the sandbox like any snippet
(never the checkout: no ``python_path``), and read back by name. Each cold run
that may plot gets its own copy, seeded in its working directory: whatever a
snippet does to its copy, the next one gets the list as built. The content is
never parsed here; only the file name the builder reports is checked.
"""

from __future__ import annotations

import re
import threading

from .distributions import fingerprint, installed
from .probe import Info, Plan
from .settings import SandboxSettings
from .supervise import execute

CACHE_DIR = ".cache/matplotlib"  # under HOME, the run's working directory
MOST = 4 * 1024 * 1024
NAME = re.compile(r"fontlist-v[0-9A-Za-z.]{1,24}\.json")
_PLOTTING = re.compile(r"matplotlib|seaborn|plot|\.hist\(|imshow|savefig")

BUILDER = r'''
import glob, os, shutil
import matplotlib.font_manager
cache = os.path.join(os.path.expanduser("~"), ".cache", "matplotlib")
found = sorted(glob.glob(os.path.join(cache, "fontlist-v*.json")))
out = ".codedistiller-outputs"
shutil.copyfile(found[0], os.path.join(out, "fontlist.json"))
with open(os.path.join(out, "fontlist.name"), "w") as f:
    f.write(os.path.basename(found[0]))
'''

_lock = threading.Lock()
_built: dict[tuple, dict[str, bytes]] = {}  # (interpreter, installed stamp) -> seed, {} if it could not


def may_plot(code: str) -> bool:
    """Whether ``code`` visibly may draw with matplotlib (directly or through pandas, seaborn, ...)."""
    return bool(_PLOTTING.search(code))


def seed(code: str, plan: Plan, settings: SandboxSettings, interpreter: str, info: Info) -> dict[str, bytes]:
    """The files to put in a cold run of ``code`` so matplotlib finds its font list built
    (``{}`` when the code does not plot, matplotlib is not installed, or the list could not be built)."""
    if not may_plot(code):
        return {}
    key = (interpreter, fingerprint(info.sys_path))
    with _lock:  # built once: a second thread waits for the first one's build
        if key not in _built:
            _built[key] = _build(plan, settings, interpreter, info)
        return _built[key]


def _build(plan: Plan, settings: SandboxSettings, interpreter: str, info: Info) -> dict[str, bytes]:
    try:
        if "matplotlib" not in installed(info.sys_path).tops:
            return {}
    except Exception:  # broken metadata: matplotlib builds its own list, as before
        return {}
    run = execute(BUILDER, plan, settings, interpreter, info, (),
                  fetch={"fontlist.json": MOST, "fontlist.name": 64})
    name = run.fetched.get("fontlist.name", b"").decode("ascii", errors="replace").strip()
    data = run.fetched.get("fontlist.json")
    if run.returncode != 0 or data is None or not NAME.fullmatch(name):
        return {}
    return {f"{CACHE_DIR}/{name}": data}
