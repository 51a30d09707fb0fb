"""The API documentation at ``/docs``, served by this service alone, and the OpenAPI document's security.

Swagger UI comes from the installed ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads
OpenAPI 3.1), served under ``/docs/assets``: the page loads no script, style, font or image from
another host, so it works on a network without internet (FastAPI's default page loads Swagger UI
from a CDN and is blank there). ReDoc is not offered: its page needs a CDN and Google fonts too.
Swagger UI's online validator badge is off for the same reason.

The OpenAPI document declares how each path is authenticated, so "Authorize" fills the right header:
``apiKey`` (``Authorization: Bearer``) for ``/api/v1``, ``ingestKey`` (``X-API-Key``; ``Authorization:
ApiKey`` and ``?apiKey=`` work too) for ``/ingest/http``, ``integrationToken`` for
``/ingest/chirpstack`` and ``metricsToken`` for ``/metrics`` (only when ``IOTD_METRICS_TOKEN`` is set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from registry.api.router import PREFIX

DOCS = "/docs"
ASSETS = "/docs/assets"

DESCRIPTION = """IoT message distributor and device registry for cities: ChirpStack v4 and NB-IoT data in,
decoded `iotd.message/1` messages out to the consumers that departments register.

## Authentication

Every `/api/v1` request carries an **API key**: `Authorization: Bearer <key>`. Press **Authorize**,
paste the key into `apiKey` (without the word `Bearer`) and every "Try it out" sends it.

* The first key of a new installation comes from the server's command line (it reads `IOTD_DATABASE_URL`):
  `iotd admin create-key --global --name "city IT"`. It is shown once and stored hashed.
* A key belongs to one organization with a role: `read` (GET), `write` (create and change devices,
  applications, consumers, subscriptions and decoders) or `admin` (also keys, users, the audit log),
  or it is **global** (every organization; a global `admin` creates organizations). Create more keys
  with `POST /api/v1/api-keys`.
* Another organization's objects answer 404, exactly like objects that do not exist.

Devices send data to `POST /ingest/http` with their **ingest key** (in the answer to the device's
creation, once): `X-API-Key: <key>` (`ingestKey` under Authorize), `Authorization: ApiKey <key>` or
`?apiKey=<key>`. ChirpStack's HTTP integration sends `Authorization: Bearer <integration token>` to
`POST /ingest/chirpstack`.

## Bodies and answers

Bodies are JSON, read as JSON whatever the `Content-Type` says (`curl -d` works as it is); a body that
is not JSON answers 400 saying where it breaks. Errors are `{"error": "..."}` saying what to fix.
Every object has a `version`, sent as `ETag`; send it back in `If-Match` to refuse lost updates (412).
Lists take `limit` and `offset` and answer `{items, total, limit, offset}`. Secrets (app keys, ingest
keys, consumer secrets) go in and never come out.
"""

SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "iotd API key",
               "description": "An API key (`iotd admin create-key`, `POST /api/v1/api-keys`)."},
    "ingestKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                  "description": "A device's ingest key, from its creation or `rotate-ingest-key` "
                                 "(also `Authorization: ApiKey <key>` or `?apiKey=`)."},
    "integrationToken": {"type": "http", "scheme": "bearer", "bearerFormat": "iotd integration token",
                         "description": "A ChirpStack integration token (`iotd admin create-integration-token`) "
                                        "or IOTD_CHIRPSTACK_HTTP_TOKEN."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "IOTD_METRICS_TOKEN, when it is set; /metrics is open otherwise."},
}


def security_for(path: str) -> list[dict[str, list[str]]] | None:
    """The OpenAPI ``security`` of an operation on ``path``; None for open paths."""
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return [{"apiKey": []}]
    if path == "/ingest/http":
        return [{"ingestKey": []}]
    if path == "/ingest/chirpstack":
        return [{"integrationToken": []}]
    if path == "/metrics":
        return [{}, {"metricsToken": []}]
    return None


def with_security(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the security schemes declared and each operation's scheme set."""
    doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, item in doc.get("paths", {}).items():
        security = security_for(path)
        if security is None:
            continue
        for operation in item.values():
            if isinstance(operation, dict):
                operation["security"] = security
    return doc


def install_docs(app: FastAPI) -> None:
    """``/docs`` and its assets from the installed package, and the OpenAPI document with security.

    Create the app with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load from a CDN).
    """
    assets = Path(str(swagger_ui_path))
    app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    plain = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        doc = plain()                  # FastAPI's document, cached on the app
        return with_security(doc) if first else doc

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} API", swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css", swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False})
