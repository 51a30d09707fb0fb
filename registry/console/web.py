"""How console answers are made: autoescaped templates, the security headers every answer carries, and
the cookies.

Templates (``templates/``) are Jinja2 with autoescape on and undefined names an error, so every value
from the registry (a device named ``<script>``) is shown as text. The headers forbid what the pages never
need: scripts, styles and frames from anywhere but this origin (no inline code at all, so an injected
``<script>`` would not run even if escaping failed), framing by other sites (clickjacking), guessing
content types, leaking the URL to other sites, and caching pages with people's data.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                               " frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TEMPLATES = Environment(loader=PackageLoader("registry.console", "templates"), autoescape=True,
                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def render(template: str, status_code: int = 200, **values: Any) -> Response:
    """A page from ``templates/<template>``, with the security headers."""
    html = _TEMPLATES.get_template(template).render(**values)
    return secured(HTMLResponse(html, status_code=status_code))


def redirect(to: str) -> Response:
    """303 See Other: after a form post, or to the sign-in page (a path of this site only)."""
    return secured(RedirectResponse(to, status_code=303))


def stylesheet() -> Response:
    css = resources.files("registry.console").joinpath("static/console.css").read_bytes()
    return secured(Response(css, media_type="text/css; charset=utf-8"))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """A console cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it),
    Secure when the page came over https."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=request.url.scheme == "https",
                        httponly=True, samesite="strict")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict")
