"""The traitlets configuration of the server extension: ``c.CodeDistiller.*``."""

from __future__ import annotations

from pathlib import Path

from traitlets import Bool, Int, Unicode
from traitlets.config import Configurable

from ..home import library_home


class CodeDistiller(Configurable):
    """Settings of the codedistiller server extension."""

    home = Unicode(
        "",
        config=True,
        help="Library home folder (default: $CODEDISTILLER_HOME, else <jupyter data dir>/codedistiller).",
    )
    max_body_bytes = Int(
        64 * 1024,
        config=True,
        help="Largest request body the API accepts, in bytes.",
    )

    daemon = Bool(
        True,
        config=True,
        help="Start the background distiller (`codedistiller daemon`) with the server and stop it with the "
        "server. An empty library then gets the default sources (installed curated packages).",
    )
    daemon_interval = Int(
        3600,
        config=True,
        help="Seconds between the background distiller's passes over every source.",
    )

    mcp = Bool(
        True,
        config=True,
        help="Serve the library to coding agents over MCP (streamable HTTP) at /codedistiller/mcp, behind "
        "Jupyter's authentication. Needs the mcp extra: pip install 'jupyter-codedistiller[mcp]'.",
    )

    cluster = Unicode(
        "",
        config=True,
        help="Dask scheduler address (tcp://SCHEDULER:8786) on whose workers the background distiller "
        "validates snippets (needs jupyter-codedistiller[cluster]); empty: the library's cluster setting, "
        "else this machine.",
    )

    def library_home(self) -> Path:
        """The configured home, resolved to an absolute path."""
        return library_home(self.home or None).resolve()
