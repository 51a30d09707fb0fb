"""The web console over HTTP against the whole running service: sign-in, sessions, CSRF, lockout, expiry,
tenancy on the pages, escaping and the security headers."""

from __future__ import annotations

import httpx
import pytest

from distributor.http_guard import DEFAULT_LIMIT, route_for
from registry.console import throttle
from tests.console.console_kit import (
    PASSWORD,
    add_device,
    add_user,
    client,
    csrf_token,
    new_email,
    organization_with_app,
    sign_in,
    signed_in,
)
from tests.support.api import Api

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none';"
       " form-action 'self'")


def set_cookies(r: httpx.Response) -> dict[str, str]:
    """The response's Set-Cookie headers by cookie name (whole header values, attributes included)."""
    return {value.split("=", 1)[0]: value for value in r.headers.get_list("set-cookie")}


def assert_secured(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == CSP
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/sign-in", "/sign-out", "/devices", "/static/console.css"])
def test_console_paths_take_no_api_key_and_a_small_body(path: str) -> None:
    route = route_for(path, api=True, metrics_protected=True)
    assert (route.credential, route.limit) == (None, DEFAULT_LIMIT)


async def test_pages_need_a_session_and_carry_the_security_headers(api: Api) -> None:
    async with client(api) as c:
        for path in ("/", "/devices", "/devices?q=x"):
            r = await c.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/sign-in"), path
            assert_secured(r)
        form = await c.get("/sign-in")
        assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
        assert_secured(form)
        assert '<html lang="en">' in form.text and "<style" not in form.text and "<script" not in form.text
        assert 'label for="email"' in form.text and 'label for="password"' in form.text
        css = await c.get("/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert_secured(css)
        docs = await api.client.get("/openapi.json")
        assert not [p for p in docs.json()["paths"] if not p.startswith(("/api/v1", "/ingest", "/healthz",
                                                                          "/readyz", "/metrics"))]


async def test_a_wrong_password_shows_the_form_again_with_an_error_and_no_session(api: Api) -> None:
    email = await add_user(api)
    async with client(api) as c:
        r = await sign_in(c, email, "not the password at all")
        assert r.status_code == 401
        assert "The e-mail address or the password is not right." in r.text
        assert "iotd_session" not in set_cookies(r)
        assert (await c.get("/")).status_code == 303
        unknown = await sign_in(c, new_email("nobody"), PASSWORD)      # the same answer for an unknown e-mail
        assert unknown.status_code == 401 and "is not right" in unknown.text


async def test_the_right_password_starts_a_session_in_a_strict_http_only_cookie(api: Api) -> None:
    email = await add_user(api, role="write")
    async with client(api) as c:
        r = await sign_in(c, email)
        assert (r.status_code, r.headers["location"]) == (303, "/")
        assert_secured(r)
        cookie = set_cookies(r)["iotd_session"]
        attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
        assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
        assert "max-age=43200" in attributes and "secure" not in attributes     # plain http here: not Secure
        assert set_cookies(r)["iotd_csrf"].lower().count("max-age=0") == 1   # the pre-session token is dropped
        overview = await c.get("/")
        assert overview.status_code == 200
        assert_secured(overview)
        assert email in overview.text and "write" in overview.text and "all organizations" in overview.text
        api_call = await c.get("/api/v1/devices")      # a session is no API key: the API is unchanged
        assert api_call.status_code == 401


async def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(api: Api) -> None:
    email = await add_user(api)
    async with client(api) as c:
        await c.get("/sign-in")                         # the pre-session cookie is there, the field is not
        r = await c.post("/sign-in", data={"email": email, "password": PASSWORD})
        assert r.status_code == 403 and "security token" in r.text and "iotd_session" not in set_cookies(r)
        assert_secured(r)
        r = await c.post("/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": "x" * 43})
        assert r.status_code == 403
    async with client(api) as c:                        # the field without the cookie: refused too
        token = csrf_token((await c.get("/sign-in")).text)
        c.cookies.clear()
        r = await c.post("/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 403
    async with signed_in(api) as (c, _):
        for data in ({}, {"csrf_token": "wrong"}):
            r = await c.post("/sign-out", data=data)
            assert r.status_code == 403 and "security token" in r.text
        assert (await c.get("/")).status_code == 200    # still signed in


async def test_sign_out_ends_the_session_for_the_old_cookie_too(api: Api) -> None:
    async with signed_in(api) as (c, _):
        old = c.cookies["iotd_session"]
        page = await c.get("/")
        r = await c.post("/sign-out", data={"csrf_token": csrf_token(page.text)})
        assert (r.status_code, r.headers["location"]) == (303, "/sign-in")
        assert "max-age=0" in set_cookies(r)["iotd_session"].lower()
    async with client(api) as replay:
        replay.cookies.set("iotd_session", old)
        r = await replay.get("/")
        assert (r.status_code, r.headers["location"]) == (303, "/sign-in")


async def test_an_account_is_locked_after_five_failures_even_for_the_right_password(api: Api) -> None:
    email = await add_user(api)
    async with client(api) as c:
        for attempt in range(1, throttle.ACCOUNT_LIMIT + 1):
            r = await sign_in(c, email, f"wrong guess number {attempt}")
            assert r.status_code == (429 if attempt == throttle.ACCOUNT_LIMIT else 401), (attempt, r.text)
        assert "Too many failed sign-ins" in r.text
        r = await sign_in(c, email, PASSWORD)
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        assert "iotd_session" not in set_cookies(r)
        assert (await c.get("/")).status_code == 303
    other = await add_user(api)            # the address is not locked by one account's failures
    async with client(api) as c:
        assert (await sign_in(c, other)).status_code == 303


async def test_a_success_clears_the_accounts_failures(api: Api) -> None:
    email = await add_user(api)
    async with client(api) as c:
        for _ in range(throttle.ACCOUNT_LIMIT - 1):
            assert (await sign_in(c, email, "a wrong password")).status_code == 401
        assert (await sign_in(c, email)).status_code == 303
    async with client(api) as c:
        assert (await sign_in(c, email, "a wrong password")).status_code == 401   # counting starts again


async def test_a_session_ends_after_idling_and_at_its_absolute_expiry(api: Api) -> None:
    assert api.service.pool is not None
    for column, value in (("last_seen_at", "now() - interval '31 minutes'"), ("expires_at", "now()")):
        async with signed_in(api) as (c, email):
            assert (await c.get("/")).status_code == 200
            await api.service.pool.execute(f"UPDATE console_sessions SET {column} = {value} WHERE user_id ="
                                           " (SELECT id FROM users WHERE email = $1)", email)
            r = await c.get("/devices")
            assert (r.status_code, r.headers["location"]) == (303, "/sign-in"), column


async def test_a_user_sees_only_their_organizations_devices(api: Api) -> None:
    org_a, app_a = await organization_with_app(api, "Aarhus")
    _, app_b = await organization_with_app(api, "Billund")
    await add_device(api, app_a, "room a.1")
    await add_device(api, app_a, "room a.2")
    await add_device(api, app_b, "secret b.1")
    async with signed_in(api, role="read", organization=org_a) as (c, email):
        overview = await c.get("/")
        assert "Aarhus" in overview.text and email in overview.text and "Billund" not in overview.text
        listed = await c.get("/devices")
        assert listed.status_code == 200
        assert "room a.1" in listed.text and "room a.2" in listed.text and "Aarhus app" in listed.text
        assert "secret b.1" not in listed.text and "Billund" not in listed.text and app_b not in listed.text
        foreign = await c.get("/devices", params={"application_id": app_b})
        assert foreign.status_code == 404 and "secret b.1" not in foreign.text and "Billund" not in foreign.text
        for junk in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
            assert (await c.get("/devices", params={"application_id": junk})).status_code == 404
        searched = await c.get("/devices", params={"q": "secret"})
        assert searched.status_code == 200 and "secret b.1" not in searched.text and "No devices match" in searched.text
        own = await c.get("/devices", params={"application_id": app_a, "sort": "created", "q": "room"})
        assert own.text.index("room a.2") < own.text.index("room a.1")     # newest first
    async with signed_in(api, role="admin") as (c, _):      # a global user: every organization
        listed = await c.get("/devices")
        assert "room a.1" in listed.text and "secret b.1" in listed.text and "all organizations" in listed.text


async def test_device_names_are_escaped(api: Api) -> None:
    org, app = await organization_with_app(api, "Escaping")
    await add_device(api, app, "<script>alert(1)</script>")
    async with signed_in(api, organization=org) as (c, _):
        r = await c.get("/devices", params={"q": "<script>"})
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        assert "<script>alert(1)" not in r.text
        r = await c.get("/devices", params={"q": '"><b>x'})
        assert '"><b>x' not in r.text and "&#34;&gt;&lt;b&gt;x" in r.text     # the search box's value too


async def test_the_devices_list_pages_by_fifty(api: Api) -> None:
    assert api.service.pool is not None
    org, app = await organization_with_app(api, "Paging")
    await api.service.pool.execute("INSERT INTO devices (application_id, name, kind, dev_eui) SELECT $1::uuid,"
                                   " 'bulk ' || lpad(g::text, 3, '0'), 'lorawan', lpad(to_hex(g), 12, '0') || 'beef'"
                                   " FROM generate_series(1, 55) g", app)
    async with signed_in(api, organization=org) as (c, _):
        first = await c.get("/devices")
        assert first.text.count("<tr>") == 1 + 50 and "bulk 050" in first.text and "bulk 051" not in first.text
        assert 'href="/devices?offset=50"' in first.text and "1–50 shown" in first.text
        second = await c.get("/devices", params={"offset": "50"})
        assert second.text.count("<tr>") == 1 + 5 and "bulk 055" in second.text and "Previous" in second.text
        for offset in ("-1", "x", "9" * 40):
            assert (await c.get("/devices", params={"offset": offset})).status_code == 200
