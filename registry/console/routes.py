"""The console's pages: sign-in and sign-out, the overview at ``/`` and the devices list.

Every page but sign-in needs a session (else 303 to ``/sign-in``); every POST needs its CSRF token
(``registry.console.csrf``; else 403 with a page saying so). None of these routes is in the OpenAPI
document: they are pages for people, not API operations, and ``/api/v1`` keeps its API keys.

Sign-in, in order: the form's CSRF token; the lock (``registry.console.throttle``), refused before the
password is looked at; the password (one argon2 check, also for an unknown e-mail); then a new session,
so a session token is never carried over from before sign-in.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from registry.api.context import ApiContext
from registry.console import csrf, sessions, throttle
from registry.console.passwords import hash_password, needs_rehash, verify_password
from registry.console.queries import PAGE_SIZE, SORTS, DeviceQuery, NoSuchApplication, counts, devices
from registry.console.sessions import Session
from registry.console.web import clear_cookie, redirect, render, set_cookie, stylesheet

SIGN_IN = "/sign-in"
MAX_EMAIL_FIELD = 254
_USER = ("SELECT id, password_hash FROM users WHERE lower(email) = lower($1) ORDER BY email = $1 DESC LIMIT 1")


def page(template: str, request: Request, session: Session, status_code: int = 200, **values: object) -> Response:
    """A signed-in page: the layout's header needs the session (who, role, organization, sign-out form)."""
    return render(template, status_code, session=session, can_write=session.can_write, path=request.url.path,
                  **values)


def refused(request: Request, session: Session | None = None) -> Response:
    """403 for a form whose CSRF token is missing or wrong."""
    values: dict[str, object] = {"title": "Form refused", "message": csrf.REFUSED}
    if session is not None:
        return page("message.html", request, session, 403, **values)
    return render("message.html", 403, session=None, can_write=False, path=request.url.path, **values)


def create_console_router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    async def signed_in(request: Request) -> Session | None:
        return await sessions.resolve(ctx.pool, request.cookies.get(sessions.COOKIE))

    def sign_in_page(request: Request, error: str | None = None, email: str = "", status_code: int = 200
                     ) -> Response:
        """The form with a fresh pre-session CSRF token, in the form and in its cookie."""
        token = sessions.new_token()
        response = render("sign_in.html", status_code, title="Sign in", session=None, can_write=False, path=SIGN_IN,
                          error=error, email=email, csrf_token=token)
        set_cookie(response, request, csrf.PRE_SESSION_COOKIE, token, csrf.PRE_SESSION_MAX_AGE_S)
        return response

    @r.get("/static/console.css")
    async def console_css() -> Response:
        return stylesheet()

    @r.get(SIGN_IN)
    async def sign_in_form(request: Request) -> Response:
        if await signed_in(request) is not None:
            return redirect("/")
        return sign_in_page(request)

    @r.post(SIGN_IN)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        if not csrf.matches(request.cookies.get(csrf.PRE_SESSION_COOKIE), form.get(csrf.FIELD)):
            return refused(request)
        email = str(form.get("email") or "").strip()[:MAX_EMAIL_FIELD]
        password = str(form.get("password") or "")
        scopes = throttle.Scopes.of(email, request.client.host if request.client else "unknown")
        async with ctx.pool.acquire() as conn:
            wait = await throttle.locked_for(conn, scopes)
            if wait is not None:
                return sign_in_page(request, throttle.locked_message(wait), email, 429)
            user = await conn.fetchrow(_USER, email) if email else None
        stored = user["password_hash"] if user is not None else None
        if not await asyncio.to_thread(verify_password, stored, password):
            async with ctx.pool.acquire() as conn:
                locked = await throttle.failed(conn, scopes)
            message = (throttle.locked_message(throttle.LOCK.total_seconds()) if locked
                       else "The e-mail address or the password is not right.")
            return sign_in_page(request, message, email, 429 if locked else 401)
        assert user is not None and stored is not None      # verify_password is False without a stored hash
        async with ctx.pool.acquire() as conn, conn.transaction():
            await throttle.succeeded(conn, scopes)
            token = await sessions.create(conn, str(user["id"]))
            if needs_rehash(stored):
                await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user["id"],
                                   await asyncio.to_thread(hash_password, password))
        response = redirect("/")
        set_cookie(response, request, sessions.COOKIE, token, int(sessions.ABSOLUTE.total_seconds()))
        clear_cookie(response, request, csrf.PRE_SESSION_COOKIE)
        return response

    @r.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return redirect(SIGN_IN)
        form = await request.form()
        if not csrf.matches(session.csrf_token, form.get(csrf.FIELD)):
            return refused(request, session)
        await sessions.end(ctx.pool, session)
        response = redirect(SIGN_IN)
        clear_cookie(response, request, sessions.COOKIE)
        return response

    @r.get("/")
    async def overview(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return redirect(SIGN_IN)
        return page("overview.html", request, session, title="Overview",
                    counts=await counts(ctx.pool, session.principal))

    @r.get("/devices")
    async def device_list(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return redirect(SIGN_IN)
        query = DeviceQuery.of(dict(request.query_params))
        try:
            found = await devices(ctx.pool, session.principal, query)
        except NoSuchApplication:
            return page("message.html", request, session, 404, title="Not found",
                        message="There is no such application (or it belongs to another organization).")
        return page("devices.html", request, session, title="Devices", query=query, found=found,
                    page_size=PAGE_SIZE, sorts=tuple(SORTS))

    return r
