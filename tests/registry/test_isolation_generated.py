"""Tenant isolation, generated from the running service's OpenAPI document: every operation under /api/v1,
with organization A's admin, write and read keys, aimed at organization B's objects (every slot foreign,
then each slot foreign alone: tests/support/openapi_probe.py), and with no key and a revoked key.

One service and one run for the module (the ``outcome`` fixture); each test checks one rule on it:

* no answer carries B's data (tests/support/isolation_rules.py: the leak rule and its two exceptions);
* no request naming one of B's objects in its path succeeds, or answers otherwise than for an object that
  does not exist (status, and error text with the ids put as placeholders);
* no list answered 200 holds one of B's objects;
* everything that is not A's reads the same to the global admin after the run as before (B's objects
  with their versions, dead letter, unknown device, audit log; global objects), and none of A's
  objects points at one of B's afterwards;
* B still works: its keys, its ingest key (202), and its consumer's deliveries verify with its secret;
* no key and a revoked key get 401 wherever 401 is documented;
* every operation ran with every role (the table is printed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.isolation_rules import coverage_table, echoed, found_in, is_error_body, leaks
from tests.support.isolation_world import (
    ROLES,
    Snapshot,
    Tenant,
    answer_body,
    delivered_and_signed,
    ingest,
    make_tenant,
    owned_by,
    revoked_key,
    stable_snapshot,
)
from tests.support.openapi_probe import (
    MissingName,
    Operation,
    Probe,
    build,
    ghost_values,
    operations,
    same_answer,
    variants,
)
from tests.support.receivers import webhook

NO_KEY, REVOKED = "none", "revoked"
CALLERS = (*ROLES, NO_KEY, REVOKED)


@dataclass
class Result:
    op: Operation
    role: str
    probe: Probe
    status: int
    leaks: list[str] = field(default_factory=list)
    foreign_items: list[str] = field(default_factory=list)
    oracle: str | None = None

    def where(self) -> str:
        return f"{self.op.name} as {self.role} ({self.probe.variant}) -> {self.status}"


@dataclass
class Outcome:
    ops: list[Operation]
    results: list[Result]
    a: Tenant
    b: Tenant
    before: Snapshot
    after: Snapshot
    ledger: set[str]
    b_keys: dict[str, int]
    b_ingest: int
    b_signed: tuple[bool, bool]      # before and after the run
    seconds: float
    controls: int                    # requests repeated with never-used values


async def send(client: httpx.AsyncClient, probe: Probe) -> httpx.Response:
    return await client.request(probe.operation.method.upper(), probe.path, **probe.request_args())


class Prober:
    """Sends every variant of every operation as every caller and judges each answer as it comes."""

    def __init__(self, api: Api, doc: dict[str, Any], a: Tenant, b: Tenant, revoked: str) -> None:
        self.api, self.doc, self.a, self.b = api, doc, a, b
        self.keys = {**{role: a.keys[role][1] for role in ROLES}, REVOKED: revoked}
        self.secrets = b.secrets()
        self.b_owned = {i.lower() for i in b.owned()}
        self.trail = {a.keys[role][0].lower() for role in ROLES}
        self.ledger: set[str] = set()
        self.controls = 0

    async def run(self, ops: list[Operation]) -> list[Result]:
        clients = {role: self.api.as_key(key) for role, key in self.keys.items()}
        clients[NO_KEY] = httpx.AsyncClient(base_url=self.api.base_url, timeout=10)
        results = []
        try:
            for op in ops:
                probes = list(variants(self.doc, op, self.a.values(), self.b.values()))
                for role in CALLERS:
                    for probe in probes if role in ROLES else probes[:1]:
                        results.append(await self.judge(clients[role], op, role, probe))
        finally:
            for c in clients.values():
                await c.aclose()
        return results

    async def judge(self, client: httpx.AsyncClient, op: Operation, role: str, probe: Probe) -> Result:
        r = await send(client, probe)
        result = Result(op, role, probe, r.status_code)
        body = answer_body(r)
        found = leaks(body, r.headers, self.secrets, self.trail, self.ledger)
        echo = bool(found) and 400 <= r.status_code < 500 and is_error_body(body) and echoed(
            found, self.secrets, probe.carried())
        if echo or (probe.foreign_in_path and role in ROLES):
            ghosts, pairs = ghost_values(self.b.values(), self.b.marker)
            control = await send(client, build(self.doc, op, self.a.values(), ghosts, only=probe.only))
            self.controls += 1
            same = control.status_code == r.status_code and (
                not is_error_body(body) or same_answer(r.text, control.text, pairs))
            differs = f"{r.text[:300]!r}; never-used: {control.status_code} {control.text[:200]!r}"
            if echo:
                found = set()
                if not same:
                    result.leaks.append(f"echoes B's {', '.join(sorted(leaks(body, {}, self.secrets, set(), set())))}"
                                        f" where a never-used value gets another answer (existence oracle): {differs}")
            if probe.foreign_in_path and not same:
                result.oracle = f"B's object answers otherwise than one that does not exist: {differs}"
        if found:
            result.leaks.append(f"answer contains B's {', '.join(sorted(found))}: {r.text[:400]!r}")
        if 200 <= r.status_code < 300:
            self.ledger |= {c.lower() for c in probe.carried_ids()}
            if op.is_collection_read and isinstance(body, dict) and isinstance(body.get("items"), list):
                result.foreign_items = [str(i)[:300] for i in body["items"] if owned_by(i, self.b_owned)]
        return result


@pytest.fixture(scope="module")
async def outcome() -> AsyncIterator[Outcome]:
    url = await create_database("iotd_isolation")
    # the tenants' webhooks listen on loopback; every wrong key of the run comes from one address
    overrides: dict[str, Any] = {"consumer_allowed_networks": "127.0.0.1/32", "auth_failure_limit": 100_000,
                                 "state_flush_interval_s": 0.05}
    try:
        async with webhook() as (hook_a, _), webhook() as (hook_b, got_b), running_api(url, **overrides) as api:
            token = await api.create("integration-tokens", {"name": "the operator's ChirpStack"})
            a = await make_tenant(api, "a", hook_a, token["id"])
            b = await make_tenant(api, "b", hook_b, token["id"])
            revoked = await revoked_key(api, a)
            assert await ingest(api.base_url, a) == 202 and await ingest(api.base_url, b) == 202
            signed_before = await delivered_and_signed(got_b, 1, b)
            doc = (await api.client.get("/openapi.json")).json()
            ops = operations(doc)
            assert ops, "the OpenAPI document lists no operation under /api/v1"
            before = await stable_snapshot(api.client, doc, ops, a, b)
            started = time.monotonic()
            prober = Prober(api, doc, a, b, revoked)
            results = await prober.run(ops)
            seconds = time.monotonic() - started
            after = await stable_snapshot(api.client, doc, ops, a, b, strict=False)
            b_keys = {}
            for role, (_, key) in b.keys.items():
                async with api.as_key(key) as c:
                    b_keys[role] = (await c.get(f"/api/v1/organizations/{b.org}")).status_code
            b_ingest = await ingest(api.base_url, b)
            signed_after = b_ingest == 202 and await delivered_and_signed(got_b, 2, b)
            yield Outcome(ops, results, a, b, before, after, prober.ledger, b_keys, b_ingest,
                          (signed_before, signed_after), seconds, prober.controls)
    finally:
        await drop_database(url)


def report(lines: list[str], what: str) -> str:
    return f"{len(lines)} {what}:\n" + "\n".join(lines[:60])


def test_every_operation_ran_with_every_caller(outcome: Outcome, capsys: pytest.CaptureFixture[str]) -> None:
    names = [op.name for op in outcome.ops]
    rows = [(r.op.name, r.role, r.status) for r in outcome.results]
    with capsys.disabled():
        print(f"\n\ntenant isolation: {len(names)} operations, {len(rows)} requests and {outcome.controls} controls"
              f" with never-used ids in {outcome.seconds:.1f} s (A's keys against B's objects; statuses per caller)\n"
              + coverage_table(rows, names, CALLERS))
    ran = {(op, role) for op, role, _ in rows}
    missing = [f"{op} as {role}" for op in names for role in CALLERS if (op, role) not in ran]
    assert not missing, report(missing, "operation/caller pairs never ran")


def test_no_answer_carries_the_other_tenants_data(outcome: Outcome) -> None:
    found = [f"{r.where()}: {leak}" for r in outcome.results for leak in r.leaks]
    assert not found, report(found, "answers carry B's data")


def test_no_request_naming_a_foreign_object_in_its_path_succeeds(outcome: Outcome) -> None:
    found = [r.where() for r in outcome.results if r.probe.foreign_in_path and 200 <= r.status < 300]
    assert not found, report(found, "requests succeeded on B's objects")


def test_answers_do_not_tell_whether_a_foreign_object_exists(outcome: Outcome) -> None:
    found = [f"{r.where()}: {r.oracle}" for r in outcome.results if r.oracle]
    assert not found, report(found, "answers differ between B's object and one that does not exist")


def test_lists_never_show_the_other_tenants_objects(outcome: Outcome) -> None:
    found = [f"{r.where()}: {item}" for r in outcome.results for item in r.foreign_items]
    assert not found, report(found, "B's objects in A's lists")


def test_nothing_but_the_callers_own_changed(outcome: Outcome) -> None:
    before, after = outcome.before.others, outcome.after.others
    changed = [f"gone: {k}" for k in before if k not in after]
    changed += [f"new: {k}: {str(after[k])[:300]}" for k in after if k not in before]
    changed += [f"changed: {k}: {str(before[k])[:300]} -> {str(after[k])[:300]}"
                for k in before if k in after and before[k] != after[k]]
    assert not changed, report(changed, "changes to what is not A's (B's objects or global ones)")


def test_none_of_the_callers_objects_points_at_the_other_tenants(outcome: Outcome) -> None:
    trail = {outcome.a.keys[role][0].lower() for role in ROLES}
    secrets = outcome.b.secrets()
    found = [f"{k}: B's {sorted(labels)}" for k, item in outcome.after.own.items()
             if (labels := leaks(item, {}, secrets, trail, outcome.ledger))]
    assert not found, report(found, "of A's objects name B's")


def test_the_other_tenant_still_works(outcome: Outcome) -> None:
    assert outcome.b_keys == dict.fromkeys(ROLES, 200), outcome.b_keys
    assert outcome.b_ingest == 202
    assert outcome.b_signed == (True, True), "B's deliveries no longer verify with B's signing secret"


def test_no_key_and_a_revoked_key_are_refused(outcome: Outcome) -> None:
    found = [r.where() for r in outcome.results
             if r.role in (NO_KEY, REVOKED) and r.op.documents(401) and r.status != 401]
    assert not found, report(found, "operations answered a request without a valid key with something else than 401")


def test_the_test_itself_sees_a_leak() -> None:
    """The rules are not vacuous: a plain mention of another tenant's name or id is found, an echo is not."""
    secrets = {"a name (marker)": "tenantbx", "organization id": "0b0e"}
    assert found_in("the device tenantbx-http", secrets) == ["a name (marker)"]
    assert found_in("decoder 'tenantbx-codec' not found", secrets, {"tenantbx-codec"}) == []
    assert leaks({"items": [{"organization_id": "0B0E"}]}, {}, secrets, set(), set()) == {"organization id"}
    trail = {"actor": "key:tenanta-write (k1)", "after": {"consumer_id": "0b0e"}}
    assert leaks([trail], {}, secrets, {"k1"}, {"0b0e"}) == set()
    assert leaks([trail], {}, secrets, {"k2"}, {"0b0e"}) == {"organization id"}


WIDGETS: dict[str, Any] = {
    "paths": {"/api/v1/widgets/{widget_id}/attach": {"post": {
        "parameters": [{"name": "widget_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Attach"}}}},
        "responses": {"401": {}}}}},
    "components": {"schemas": {"Attach": {"type": "object", "required": ["label", "kind"], "properties": {
        "consumer_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
        "label": {"type": "string", "minLength": 7}, "kind": {"enum": ["mqtt", "http"]}, "note": {"type": "string"}}}}},
}


def test_requests_are_generated_for_an_endpoint_nobody_listed() -> None:
    op, = operations(WIDGETS)
    own, foreign = {"widget_id": "w-a", "consumer_id": "c-a"}, {"widget_id": "w-b", "consumer_id": "c-b"}
    probes = list(variants(WIDGETS, op, own, foreign))
    assert [(p.path, p.json) for p in probes] == [
        ("/api/v1/widgets/w-b/attach", {"consumer_id": "c-b", "label": "probexx", "kind": "http"}),
        ("/api/v1/widgets/w-b/attach", {"consumer_id": "c-a", "label": "probexx", "kind": "http"}),
        ("/api/v1/widgets/w-a/attach", {"consumer_id": "c-b", "label": "probexx", "kind": "http"})]
    assert [p.foreign_in_path for p in probes] == [True, True, False]
    assert probes[2].carried() == {"c-b"}


def test_a_name_without_a_value_fails_and_says_what_to_add() -> None:
    op, = operations(WIDGETS)
    with pytest.raises(MissingName, match=r"'widget_id'.*add 'widget_id' to Tenant\.values"):
        list(variants(WIDGETS, op, {}, {"consumer_id": "c-b"}))
