"""The web console (issue 18): server-rendered pages for people, served by ``iotd serve`` at ``/`` next to the
API under ``/api/v1``.

Users of the registry (``users``) sign in with e-mail and password (argon2id, ``passwords``) into a session
kept in an HttpOnly, SameSite=Strict cookie (``sessions``); failed sign-ins lock an account or address for a
while (``throttle``); every form carries a CSRF token (``csrf``); every answer carries a strict Content
Security Policy (``web``). The pages read through the API's own tenancy scoping (``queries``), so a user sees
what an API key of the same organization and role would see. ``iotd admin create-user`` (``users``) creates
users and sets passwords.
"""

from registry.console.routes import create_console_router

__all__ = ["create_console_router"]
