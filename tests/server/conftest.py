"""pytest-jupyter's fixtures and async-test hooks, for the server tests in this folder only.

Registering ``pytest_jupyter.jupyter_server`` as a session-wide plugin would put its
autouse event-loop and server-cleanup fixtures around every test of the project;
importing it here keeps them to this folder.
"""

from pytest_jupyter.jupyter_server import *  # noqa: F403
