"""jupyter_server extension: the REST API under ``/codedistiller/api/`` behind the side panel.

Enabled on install by ``jupyter-config/jupyter_server_config.d/jupyter_codedistiller.json``.
Configure with traitlets, e.g. ``c.CodeDistiller.home = "/shared/lab-library"``.
"""

from __future__ import annotations

import atexit
from typing import Any

API_PREFIX = "codedistiller/api"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_codedistiller.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the API handlers on ``serverapp``'s web application."""
    from .config import CodeDistiller
    from .handlers import handlers
    from .service import LibraryService

    config = CodeDistiller(parent=serverapp)
    service = LibraryService(
        home=config.library_home(),
        root_dir=getattr(serverapp, "root_dir", None),
        max_body_bytes=config.max_body_bytes,
        log=serverapp.log,
    )
    atexit.register(service.shutdown)  # also when the server dies without unloading its extensions
    web_app = serverapp.web_app
    web_app.settings["codedistiller"] = service
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    if config.mcp:  # the SDK itself is imported on the endpoint's first request
        from .mcphandler import McpMount, mcp_handlers

        web_app.settings["codedistiller_mcp"] = McpMount(service)
        web_app.add_handlers(".*$", mcp_handlers(web_app.settings["base_url"]))
    serverapp.log.info("codedistiller: serving the library in %s", service.home)
    if config.daemon:
        service.start_daemon(config.daemon_interval, cluster=config.cluster)


def _unload_jupyter_server_extension(serverapp: Any) -> None:
    """Stop the refresh and the daemon this server started."""
    mount = serverapp.web_app.settings.get("codedistiller_mcp")
    if mount is not None:
        mount.shutdown()
    service = serverapp.web_app.settings.get("codedistiller")
    if service is not None:
        service.shutdown()
