"""What the console tests share: users made straight in the database, a browser-less client that signs in
through the form as a person would (CSRF token from the page, cookies kept), and registry objects made
through the API."""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from registry.console.users import create_or_set_password
from tests.support.api import Api

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.org"


async def add_user(api: Api, role: str = "read", organization: str | None = None, email: str | None = None,
                   password: str = PASSWORD) -> str:
    """A console user with ``password``; returns the e-mail address."""
    email = email or new_email()
    assert api.service.pool is not None
    async with api.service.pool.acquire() as conn:
        await create_or_set_password(conn, email, role, organization, None, password)
    return email


def client(api: Api) -> httpx.AsyncClient:
    """A client with no API key that does not follow redirects (the tests look at them)."""
    return httpx.AsyncClient(base_url=api.base_url, timeout=15, follow_redirects=False)


def csrf_token(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, html[:2000]
    return found[1]


async def sign_in(c: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """The sign-in form filled in and sent, with the token the form carries."""
    form = await c.get("/sign-in")
    assert form.status_code == 200, form.text
    return await c.post("/sign-in", data={"email": email, "password": password, "csrf_token": csrf_token(form.text)})


@contextlib.asynccontextmanager
async def signed_in(api: Api, role: str = "read", organization: str | None = None
                    ) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client with a fresh user's session, and the user's e-mail address."""
    email = await add_user(api, role, organization)
    async with client(api) as c:
        r = await sign_in(c, email)
        assert r.status_code == 303, r.text
        yield c, email


async def organization_with_app(api: Api, name: str) -> tuple[str, str]:
    """A new organization with one application; returns both ids."""
    org = await api.create("organizations", {"name": f"{name} {uuid.uuid4().hex[:6]}"})
    app = await api.create("applications", {"organization_id": org["id"], "name": f"{name} app",
                                            "data_classification": "shared", "owner": name})
    return org["id"], app["id"]


async def add_device(api: Api, application_id: str, name: str, **fields: Any) -> dict[str, Any]:
    return await api.create("devices", {"application_id": application_id, "name": name, "kind": "lorawan",
                                        "dev_eui": secrets.token_hex(8), "decoder": "elsys", **fields})
