"""jupyter-codedistiller: validated, provenance-carrying code examples for Jupyter.

``%load_ext jupyter_codedistiller`` registers the ``%distill`` magic. This
module imports nothing at package import, so loading stays cheap.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%distill`` in ``ipython`` (called by ``%load_ext``)."""
    from .magics import DistillMagics

    ipython.register_magics(DistillMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister ``%distill`` and close the libraries it opened."""
    magics = ipython.magics_manager.registry.pop("DistillMagics", None)
    if magics is not None:
        magics.close()
    ipython.magics_manager.magics["line"].pop("distill", None)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds the extension: the REST API behind the side panel."""
    return [{"module": "jupyter_codedistiller.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped inside the package."""
    return [{"src": "labextension", "dest": "jupyter-codedistiller"}]
