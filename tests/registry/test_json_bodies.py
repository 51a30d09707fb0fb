"""API bodies are JSON whatever the declared Content-Type (``curl -d`` sends form encoding), and a body
that is not JSON answers 400 saying where it breaks. Real service, real PostgreSQL, real HTTP."""

from __future__ import annotations

import re

import pytest

from registry.api.json_body import as_json, declares_json, position
from registry.api.router import PREFIX
from tests.support.api import Api


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded",      # what `curl -d` sends
    None,                                     # no header at all
    "text/plain; charset=utf-8",
    "application/json",
    "application/merge-patch+json",
])
async def test_a_json_body_is_read_whatever_the_declared_type(api: Api, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    name = f"org {content_type}"
    r = await api.client.post(f"{PREFIX}/organizations", content=f'{{"name": "{name}"}}'.encode(), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name
    patched = await api.client.patch(f"{PREFIX}/organizations/{r.json()['id']}", content=b'{"name": "renamed ' +
                                     str(content_type).encode() + b'"}', headers=headers)
    assert patched.status_code == 200 and patched.json()["name"].startswith("renamed"), patched.text


@pytest.mark.parametrize(("body", "words"), [
    (b'{"name": "Aarhus",}', "the body is not valid JSON: Expecting property name enclosed in double quotes at "
                             "line 1, column 19"),
    (b'{"name":\n  Aarhus}', "at line 2, column 3"),
    (b"name=Aarhus", "line 1, column 1"),
    (b'{"name": "\xff"}', "the body is not valid JSON"),
])
async def test_a_body_that_is_not_json_is_400_saying_where(api: Api, body: bytes, words: str) -> None:
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        r = await api.client.post(f"{PREFIX}/organizations", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 400, r.text
        assert words in r.json()["error"], r.text


async def test_a_missing_body_says_so(api: Api) -> None:
    r = await api.client.post(f"{PREFIX}/organizations")
    assert r.status_code == 422 and r.json()["error"] == "a JSON body is required", r.text


async def test_nul_in_a_form_declared_json_body_is_still_refused(api: Api) -> None:
    r = await api.client.post(f"{PREFIX}/organizations", content=b'{"name": "a\\u0000b"}',
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "name: text may not contain a NUL" in r.json()["error"], r.text


async def test_the_csv_import_keeps_its_own_content_type(api: Api) -> None:
    org = await api.create("organizations", {"name": "csv org"})
    app = await api.create("applications", {"organization_id": org["id"], "name": "bins"})
    r = await api.client.post(f"{PREFIX}/devices/import", params={"application_id": app["id"], "dry_run": "true"},
                              content=b"name,kind,dev_eui,decoder\nbin 1,lorawan,70b3d50000000201,elsys\n",
                              headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] == 1, r.text


async def test_every_json_body_operation_reads_json_whatever_the_type(api: Api) -> None:
    """Generated from /openapi.json, so a new endpoint (or a router without ``JsonBodyRoute``) is covered."""
    doc = (await api.client.get("/openapi.json")).json()
    checked = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "application/json" not in op.get("requestBody", {}).get("content", {}):
                continue
            url = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
            r = await api.client.request(method.upper(), url, content=b"{oops",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 400 and "not valid JSON" in r.json()["error"], (method, path, r.text)
            checked.append(path)
    assert len(checked) > 20


@pytest.mark.parametrize(("declared", "json"), [
    (b"application/json", True), (b"Application/JSON; charset=utf-8", True), (b"application/merge-patch+json", True),
    (b"application/x-www-form-urlencoded", False), (b"text/plain", False), (b"text/json", False), (b"", False),
])
def test_which_types_already_declare_json(declared: bytes, json: bool) -> None:
    assert declares_json(declared) is json


def test_the_header_is_replaced_once() -> None:
    headers = [(b"host", b"x"), (b"content-type", b"application/x-www-form-urlencoded"), (b"content-type", b"a/b")]
    assert as_json(headers) == [(b"host", b"x"), (b"content-type", b"application/json")]
    assert as_json([(b"host", b"x")]) == [(b"host", b"x"), (b"content-type", b"application/json")]
    kept = [(b"content-type", b"application/json; charset=utf-8")]
    assert as_json(kept) == kept


def test_positions_count_lines_and_columns_from_one() -> None:
    assert position('{"a":\n  x}', 8) == (2, 3)
    assert position("x", 0) == (1, 1)
    assert position(b'{"a": 1,}', 8) == (1, 9)
