"""The web console in a real browser: Debian's chromium, driven by Playwright, with every request to another
host aborted. A person signs in through the form, lands on the overview, opens Devices and sees the device
names, the one named ``<script>alert(1)</script>`` as text (no dialog opens, the page breaks no Content
Security Policy rule), and the pages fit a 360 px wide phone. Screenshots (1280x900,
``tests.support.screenshots``): ``console-overview.png`` and ``console-devices.png``."""

from __future__ import annotations

from playwright.async_api import ConsoleMessage, Dialog, ViewportSize, async_playwright, expect

from tests.console.console_kit import PASSWORD, add_device, add_user
from tests.e2e.test_docs_browser import chromium, offline
from tests.support.api import Api
from tests.support.screenshots import screenshot_path

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}
TIMEOUT_MS = 5_000
SCRIPT_NAME = "<script>alert(1)</script>"
NAMES = ("room 1.12", "room 1.14", "well 3", SCRIPT_NAME)


async def test_sign_in_overview_and_devices_in_chromium(api: Api) -> None:
    org = (await api.create("organizations", {"name": "Aarhus"}))["id"]       # fixed names: stable screenshots
    app = (await api.create("applications", {"organization_id": org, "name": "Schools",
                                             "data_classification": "shared", "owner": "Children and Youth"}))["id"]
    for name in NAMES:
        await add_device(api, app, name)
    email = await add_user(api, role="write", organization=org, email="anna@aarhus.example")
    dialogs: list[str] = []
    problems: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            page.on("dialog", dismiss)
            page.on("console", console)
            attempted = await offline(page)

            await page.goto(f"{api.base_url}/")
            await expect(page).to_have_url(f"{api.base_url}/sign-in")
            await page.get_by_label("E-mail address").fill(email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()

            await expect(page).to_have_url(f"{api.base_url}/")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
            await expect(page.locator(".who .email")).to_have_text(email)
            await expect(page.locator(".who .role")).to_have_text("write")
            await expect(page.locator(".tiles")).to_contain_text("4 devices")
            await page.screenshot(path=screenshot_path("console-overview.png"))

            await page.get_by_role("link", name="Devices", exact=True).click()
            await expect(page).to_have_url(f"{api.base_url}/devices")
            for name in NAMES:
                await expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
            await page.screenshot(path=screenshot_path("console-devices.png"))

            await page.set_viewport_size(PHONE)
            for path in ("/devices", "/"):
                await page.goto(f"{api.base_url}{path}")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{path} is {width} px wide at {PHONE['width']} px"

            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(f"{api.base_url}/sign-in")
            await page.goto(f"{api.base_url}/devices")
            await expect(page).to_have_url(f"{api.base_url}/sign-in")
        finally:
            await browser.close()
    assert dialogs == [], f"a script ran: {dialogs}"
    assert problems == [], f"the browser reported errors (a Content Security Policy violation?): {problems}"
    assert attempted == [], f"the console tried to reach other hosts: {attempted}"
