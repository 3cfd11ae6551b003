"""A Jupyter identity provider for the hostile server tests: token login that knows who
the user is, as JupyterHub's does (``--ServerApp.identity_provider_class``)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Unicode


class NamedIdentityProvider(IdentityProvider):
    """Every request carrying the token is ``person``."""

    person = Unicode("").tag(config=True)

    def generate_anonymous_user(self, handler: Any) -> User:
        return User(username=self.person.lower().replace(" ", "-"), name=self.person)
