"""The console with imported images, in a real browser: the Templates view shows an imported
template's source image and digest, and the create dialog starts a shell from it."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.oci_registry import Registry

from .console_page import browser, create_from_dialog, open_page, sign_in
from .harness import ServerProcess
from .oci import api, import_image, oci_server, registry

__all__ = ["api", "browser", "oci_server", "open_page", "registry"]  # fixtures


@pytest.fixture(scope="module")
def server(oci_server: ServerProcess) -> ServerProcess:
    """The console pages open on the server that trusts the test registry."""
    return oci_server


def test_the_templates_view_and_the_create_dialog_offer_an_imported_image(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client, registry: Registry
) -> None:
    imported = import_image(api, registry, "busybox:1", "console-bb:1")
    assert imported.status_code == 200, imported.text
    digest = imported.json()["image"]["digest"]
    page = open_page()
    sign_in(page, server.token)
    page.locator("#view-templates").click()
    entry = page.locator('#templates tr[data-template="console-bb:1"]')
    expect(entry.locator('[data-field="source"]')).to_have_text(registry.ref("busybox:1"))
    expect(entry.locator('[data-field="digest"]')).to_have_attribute("title", digest)
    page.locator("#view-fleet").click()
    page.get_by_role("button", name="New shell").click()
    dialog = page.get_by_role("dialog", name="New shell")
    dialog.get_by_role("radio", name="bash").check()
    dialog.locator('input[name="runtime"][value="container"]').check()
    dialog.locator("#template").select_option("console-bb:1")
    name = f"from-image-{secrets.token_hex(3)}"
    shell_id, _ = create_from_dialog(page, dialog, name)
    try:
        assert api.get(f"/v1/shells/{shell_id}").json()["template"] == "console-bb:1"
    finally:
        api.delete(f"/v1/shells/{shell_id}")
