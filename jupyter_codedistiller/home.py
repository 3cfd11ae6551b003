"""Where the library lives: ``$CODEDISTILLER_HOME``, else ``<jupyter data dir>/codedistiller``."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def jupyter_data_dir() -> Path:
    """Jupyter's per-user data directory, resolved as jupyter_core does, without importing it."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"]).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Jupyter"
    if os.name == "nt":
        appdata = os.environ.get("APPDATA")
        return Path(appdata, "jupyter") if appdata else home / ".jupyter" / "data"
    xdg = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(xdg) / "jupyter"


def library_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The library home folder: ``home`` if given, else ``$CODEDISTILLER_HOME``, else the default."""
    if home:
        return Path(home).expanduser()
    if os.environ.get("CODEDISTILLER_HOME"):
        return Path(os.environ["CODEDISTILLER_HOME"]).expanduser()
    return jupyter_data_dir() / "codedistiller"


def library_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file of the library in ``home``."""
    return library_home(home) / "library.db"
