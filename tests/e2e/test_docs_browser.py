"""``/docs`` in a real browser without internet: Debian's chromium, driven by Playwright, with every
request to another host aborted, renders the page, takes an API key under "Authorize" and runs a
"Try it out" that answers 200. Screenshots (1280x900, ``tests.support.screenshots``): ``docs.png`` is
the page as it opens, ``docs-try-it-out.png`` the executed operation (the curl line, which shows the
key, is masked)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, ViewportSize, async_playwright, expect

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.screenshots import screenshot_path

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
TIMEOUT_MS = 5_000


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_docs_browser")
    async with running_api(url) as a:
        yield a
    await drop_database(url)


def chromium(path: Path = CHROMIUM) -> str:
    """Debian's chromium: missing is a failure, not a skip (the test would silently prove nothing)."""
    found = str(path) if path.exists() else shutil.which("chromium")
    if found is None:
        pytest.fail(f"{path} is missing: run deploy/dev/services.sh (it installs chromium)")
    return found


async def offline(page: Page) -> list[str]:
    """Abort every request to a host other than 127.0.0.1, as a network without internet would;
    the returned list fills with the URLs that were attempted."""
    attempted: list[str] = []

    async def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            await route.continue_()
        else:
            attempted.append(url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_loopback)
    return attempted


async def authorize(page: Page, key: str) -> None:
    """As a user does: the Authorize button, the key into the ``apiKey`` scheme, its Authorize, Close."""
    await page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    await expect(dialog).to_be_visible()
    scheme = dialog.locator(".auth-container").filter(has=page.locator("h4", has_text="apiKey (http, Bearer)"))
    await scheme.locator("input").fill(key)
    await scheme.get_by_role("button", name="Apply credentials").click()     # the button that reads "Authorize"
    await expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    await scheme.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()


async def test_docs_render_offline_and_try_it_out_answers_200(api: Api) -> None:
    created = await api.create("organizations", {"name": "Aarhus"})
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            attempted = await offline(page)
            await page.goto(f"{api.base_url}/docs")           # waits for "load": every script has run or failed
            assert attempted == [], f"/docs tried to reach other hosts: {attempted}"

            await expect(page.get_by_role("heading", level=1)).to_contain_text("iotd")
            await expect(page.get_by_text("Authorization: Bearer <key>").first).to_be_visible()
            get_organizations = page.locator(".opblock-get").filter(
                has=page.locator('[data-path="/api/v1/organizations"]')).first
            await expect(get_organizations).to_be_visible()
            await expect(page.get_by_text("Create an organization (global admin)")).to_be_visible()
            await page.screenshot(path=screenshot_path("docs.png"))

            await authorize(page, api.admin_key)

            await get_organizations.locator(".opblock-summary").click()
            await get_organizations.get_by_role("button", name="Try it out").click()
            await get_organizations.get_by_role("button", name="Execute").click()
            status = get_organizations.locator(".live-responses-table .response .response-col_status")
            await expect(status.first).to_have_text("200")
            body = get_organizations.locator(".live-responses-table tbody .response-col_description")
            await expect(body.first).to_contain_text(created["id"])

            curl = get_organizations.locator(".curl-command pre")
            await expect(curl).to_contain_text(f"Authorization: Bearer {api.admin_key}")
            await get_organizations.locator(".responses-inner").evaluate("e => e.scrollIntoView({block: 'start'})")
            await page.screenshot(path=screenshot_path("docs-try-it-out.png"), mask=[curl])
        finally:
            await browser.close()
    assert attempted == [], f"/docs tried to reach other hosts: {attempted}"


def test_a_missing_chromium_fails_and_names_the_script_that_installs_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"deploy/dev/services\.sh"):
        chromium(tmp_path / "chromium")
