"""The HTTP service (``faceverify serve``): an ASGI app over the Verifier, safe with many workers.

See docs/service.md. Private: the supported entry points are ``create_app``,
``ServiceConfig`` and the ``faceverify serve`` / ``faceverify clients`` commands.
"""

from ._app import app_from_environment, create_app
from ._clients import ApiClient, ClientStore, Scope
from ._config import ServiceConfig
from ._db import open_service_database

__all__ = [
    "ApiClient",
    "ClientStore",
    "Scope",
    "ServiceConfig",
    "app_from_environment",
    "create_app",
    "open_service_database",
]
