"""``/docs`` works without internet: the page and every asset it names come from the service itself,
and the OpenAPI document declares how each path is authenticated, so "Authorize" works."""

from __future__ import annotations

import re

import httpx

from tests.support.api import Api

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ANY_URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


async def test_the_docs_page_names_no_other_host_and_its_assets_load(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as anyone:   # no key: /docs is open
        page = await anyone.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert ANY_URL.findall(page.text) == [], page.text
        assets = ASSET.findall(page.text)
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets), assets
        for asset in assets:
            r = await anyone.get(asset)
            assert r.status_code == 200 and len(r.content) > 500, (asset, r.status_code)
        js = await anyone.get("/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content
        assert "'/openapi.json'" in page.text and '"validatorUrl": null' in page.text
        assert (await anyone.get("/redoc")).status_code == 404     # its page would load from a CDN


async def test_the_openapi_document_declares_the_credentials(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["ingestKey"]["in"] == "header" and schemes["ingestKey"]["name"] == "X-API-Key"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path.startswith("/api/v1"):
                assert op.get("security") == [{"apiKey": []}], (method, path)
    assert doc["paths"]["/ingest/http"]["post"]["security"] == [{"ingestKey": []}]
    assert doc["paths"]["/ingest/chirpstack"]["post"]["security"] == [{"integrationToken": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert "Authorization: Bearer <key>" in doc["info"]["description"]
    assert "iotd admin create-key --global" in doc["info"]["description"]


async def test_the_main_resources_carry_examples_that_the_api_accepts(api: Api) -> None:
    """Each request example is a body the API takes (ids filled in from objects just created)."""
    doc = (await api.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    ids: dict[str, str] = {}
    for name, path, id_field in (("OrganizationIn", "organizations", "organization_id"),
                                 ("ApplicationIn", "applications", "application_id"),
                                 ("DeviceIn", "devices", None), ("ConsumerIn", "consumers", "consumer_id"),
                                 ("SubscriptionIn", "subscriptions", None)):
        examples = schemas[name].get("examples")
        assert examples, f"{name} has no example"
        body = {k: ids.get(k, v) for k, v in examples[0].items()}
        created = await api.create(path, body)
        if id_field:
            ids[id_field] = created["id"]
    for name in ("Device", "DeviceCreated", "Organization", "Consumer"):
        assert schemas[name].get("examples"), f"{name} has no example"
