"""`iotd admin create-user`: a console user, or a new password for an existing one; the password from
stdin (or a prompt), never printed; a short password or a bad organization is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg

from registry.console.passwords import verify_password
from tests.console.console_kit import client, sign_in
from tests.support.api import Api


def create_user(url: str, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IOTD_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "distributor.cli", "admin", "create-user", *args],
                          input=password + "\n", capture_output=True, text=True, env=env, timeout=60)


async def test_create_user_then_set_a_new_password(api: Api) -> None:
    url = api.service.settings.database_url
    assert url is not None and api.service.pool is not None
    org = (await api.create("organizations", {"name": "CLI"}))["id"]
    email = f"ops-{uuid.uuid4().hex[:6]}@example.org"
    first = "first password, long enough"
    done = create_user(url, first, email, "--organization", org, "--role", "write", "--name", "Ops Person")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"created user {email} (") and "role write" in done.stdout
    assert done.stdout.count("\n") == 1 and first not in done.stdout + done.stderr
    row = await api.service.pool.fetchrow("SELECT name, role, organization_id, password_hash FROM users"
                                          " WHERE email = $1", email)
    assert (row["name"], row["role"], str(row["organization_id"])) == ("Ops Person", "write", org)
    assert row["password_hash"].startswith("$argon2id$") and verify_password(row["password_hash"], first)

    async with client(api) as c:
        assert (await sign_in(c, email, first)).status_code == 303
        second = "second password, also long"
        again = create_user(url, second, email.upper(), "--global", "--role", "admin")   # the same user
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"set the password of user {email} (") and second not in again.stdout
        assert (await c.get("/")).status_code == 303              # its sessions were ended
        assert (await sign_in(c, email, second)).status_code == 303
    role, count = await api.service.pool.fetchrow(
        "SELECT role, (SELECT count(*) FROM users WHERE lower(email) = lower($1)) FROM users WHERE email = $1", email)
    assert (role, count) == ("write", 1)                          # role and organization are kept
    log = await api.client.get("/api/v1/audit-log", params={"resource": "user"})
    assert first not in log.text and second not in log.text


async def test_refusals_are_one_clear_line(api: Api) -> None:
    url = api.service.settings.database_url
    assert url is not None
    short = create_user(url, "too short", "x@example.org", "--global", "--role", "read")
    assert short.returncode != 0 and "at least 12 characters" in short.stderr and "too short" not in short.stderr
    bad_org = create_user(url, "long enough password", "x@example.org", "--organization", "nope", "--role", "read")
    assert bad_org.returncode != 0 and "is not an organization id" in bad_org.stderr
    missing = create_user(url, "long enough password", "x@example.org", "--organization",
                          "00000000-0000-0000-0000-000000000000", "--role", "read")
    assert missing.returncode != 0 and "organization not found" in missing.stderr
    not_email = create_user(url, "long enough password", "not-an-address", "--global", "--role", "read")
    assert not_email.returncode != 0 and "is not an e-mail address" in not_email.stderr
    for done in (short, bad_org, missing, not_email):
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users WHERE email = 'x@example.org'") == 0
    finally:
        await conn.close()
