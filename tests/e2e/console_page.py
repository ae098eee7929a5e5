"""The console in a real browser, shared by the console's browser tests: Debian's Chromium, headless,
driven by Playwright (its own browser download is never used), against the session's real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from shells.sdk import Shell

from .harness import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_ENV = "SHELLS_SCREENSHOTS_DIR"
"""Where the screenshots go: ``make screenshots`` points it at docs/screenshots (the README's);
otherwise the test's own temporary directory, so a test run leaves the checkout untouched."""
WAIT_MS = 60_000

if not CHROMIUM.exists():  # skips every test module that imports this one
    pytest.skip(
        "needs Debian's chromium (scripts/install-system-deps.sh installs it)", allow_module_level=True
    )

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, server: ServerProcess) -> Iterator[Callable[..., Page]]:
    """``open_page(scheme="light", width=1440)``: a fresh browser context at the console, not signed in."""
    contexts: list[BrowserContext] = []

    def open_(scheme: str = "light", width: int = 1440, height: int = 900) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,  # type: ignore[arg-type]
            permissions=["clipboard-read", "clipboard-write"],
        )
        contexts.append(context)
        page = context.new_page()
        page.goto(server.url + "/")
        return page

    yield open_
    for context in contexts:
        context.close()


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#feed-status")).to_have_text("● live")


def row(page: Page, shell_id: str) -> Locator:
    return page.locator(f'#fleet-table tr[data-shell="{shell_id}"]')


def open_sheet(page: Page, shell: Shell) -> None:
    row(page, shell.id).get_by_role("button", name=shell.info.name).click()
    expect(page.locator("#detail")).to_have_attribute("data-shell", shell.id)


def create_from_dialog(page: Page, dialog: Locator, name: str) -> tuple[str, Locator]:
    """Name the shell in the open create dialog, create it, and wait for its row to run; the
    shell's id and its row."""
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Create").click()
    created = page.locator("#fleet-table tr", has_text=name)
    expect(created).to_have_attribute("data-state", "running")
    shell_id = created.get_attribute("data-shell")
    assert shell_id is not None
    return shell_id, created
