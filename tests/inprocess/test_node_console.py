"""The console in a real browser against an in-process instance on the fake node: a preset that is
not built yet is built from the create dialog, with its progress shown, then the shell starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from ..e2e.console_page import browser, sign_in
from ..support.inprocess import Instance, serving_http

__all__ = ["browser"]  # the fixture, shared with the end-to-end console tests


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, Instance]]:
    with serving_http(tmp_path) as (url, instance):
        instance.node.build_step_s = 1.0  # long enough to watch the steps go by
        yield url, instance


def test_a_preset_not_built_yet_is_built_from_the_dialog_with_its_steps_shown(
    browser: Browser, console: tuple[str, Instance]
) -> None:
    url, instance = console
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url + "/")
        sign_in(page, instance.token)
        page.get_by_role("button", name="New shell").click()
        dialog = page.get_by_role("dialog", name="New shell")
        dialog.get_by_role("radio", name="node").check()
        dialog.locator('input[name="runtime"][value="container"]').check()
        dialog.get_by_label("Name").fill("first-node")
        dialog.get_by_role("button", name="Create").click()
        expect(dialog.locator("#create-building")).to_contain_text("Building node:1: step 1 of 2")
        created = page.locator("#fleet-table tr", has_text="first-node")
        expect(created).to_have_attribute("data-state", "running")
        assert instance.node.builds == ["node:1"]
    finally:
        context.close()
