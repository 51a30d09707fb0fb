"""The REST API under ``/api/v1``: the registry for IT teams and departments (FastAPI).

``create_api_router(context)`` returns one router with every resource; the service mounts it
next to ingest and operations. Authentication is an API key (``Authorization: Bearer``);
every query is scoped to the key's organization, so another tenant's objects are 404.
"""

from registry.api.context import ApiContext
from registry.api.router import create_api_router, install_error_handlers

__all__ = ["ApiContext", "create_api_router", "install_error_handlers"]
