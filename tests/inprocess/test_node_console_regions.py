"""The console's create dialog offers the instance's regions (from GET /v1/info) and creates the
shell in the one chosen, in a real browser against an in-process instance placing on eu and us."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer

from ..e2e.console_page import browser, sign_in
from ..support.inprocess import serving_http

__all__ = ["browser"]


def offer(name: str, region: str) -> NodeOffer:
    return NodeOffer(name, "", region, "", frozenset({Runtime.CONTAINER}), "", 4, 4, 8192, 100_000)


def test_the_create_dialog_creates_the_shell_in_the_chosen_region(browser: Browser, tmp_path: Path) -> None:
    with serving_http(tmp_path, region="eu") as (url, instance):
        instance.control.ctx.nodes = lambda: [offer("eu-1", "eu"), offer("us-1", "us")]
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(url + "/")
            sign_in(page, instance.token)
            page.get_by_role("button", name="New shell").click()
            dialog = page.get_by_role("dialog", name="New shell")
            region = dialog.get_by_label("Region")
            expect(region).to_have_value("eu")  # the server's own region first
            expect(region.locator("option")).to_have_text(["eu (container)", "us (container)"])
            dialog.locator('input[name="runtime"][value="container"]').check()
            region.select_option("us")
            dialog.get_by_label("Name").fill("in-us")
            dialog.get_by_role("button", name="Create").click()
            created = page.locator("#fleet-table tr", has_text="in-us")
            expect(created).to_have_attribute("data-state", "running")
            (shell,) = [s for s in instance.control.ctx.store.list_shells() if s.name == "in-us"]
            assert shell.region == "us"
        finally:
            context.close()
