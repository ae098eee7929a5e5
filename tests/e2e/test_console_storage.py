"""The console's storage, in a real browser against the real server: the Volumes view creates a
volume (a bad name is the server's typed error, shown) and stores bucket credentials whose secret is
never on the page again; the create dialog attaches the volume at a path, and sends a bucket mount
and a sync that name the stored credentials (the server resolves the name and refuses the loopback
endpoint with the bucket error, shown in the dialog; nothing is created); the detail sheet shows the
shell's volume and its sync status; the volume and the credentials are deleted from the page."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from shells.sdk import Shells

from .console_page import browser, open_page, sign_in
from .harness import ServerProcess
from .test_console_secrets import nowhere_on, show

__all__ = ["browser", "open_page"]  # fixtures, used by name


def test_volumes_credentials_and_the_create_dialogs_storage(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client, client: Shells
) -> None:
    volume, key = f"cvol-{secrets.token_hex(3)}", f"ckey-{secrets.token_hex(3)}"
    secret = f"s3-{secrets.token_hex(12)}"
    shell_id = None
    page = open_page()
    sign_in(page, server.token)
    show(page, "Volumes")
    try:
        page.locator("#volume-new").click()
        made = page.get_by_role("dialog", name="New volume")
        made.locator("#volume-name").fill("Not A Name")
        made.get_by_role("button", name="Create").click()
        expect(made.get_by_role("alert")).to_contain_text("not a volume name")
        made.locator("#volume-name").fill(volume)
        made.get_by_role("button", name="Create").click()
        expect(page.locator(f'#volumes-table tr[data-volume="{volume}"]')).to_contain_text("1 GiB")

        page.locator("#bucket-key-new").click()
        stored = page.get_by_role("dialog", name="New bucket credentials")
        stored.locator("#bucket-key-name").fill(key)
        stored.locator("#bucket-key-id").fill("AKIDCONSOLE")
        stored.locator("#bucket-key-secret").fill(secret)
        expect(stored.locator("#bucket-key-secret")).to_have_attribute("type", "password")
        stored.get_by_role("button", name="Store").click()
        expect(page.locator(f'#bucket-keys-table tr[data-bucket-key="{key}"]')).to_contain_text("AKIDCONSOLE")
        nowhere_on(page, secret)

        page.locator("#view-fleet").click()
        page.get_by_role("button", name="New shell").click()
        dialog = page.get_by_role("dialog", name="New shell")
        dialog.get_by_role("radio", name="bash").check()
        dialog.locator('input[name="runtime"][value="container"]').check()
        choice = dialog.locator("#storage-choice")
        choice.get_by_role("checkbox", name=volume).check()
        choice.get_by_label(f"Path of {volume}").fill("/data")
        choice.locator("#mount-bucket").fill("user-runs")
        choice.locator("#mount-endpoint").fill("http://127.0.0.1:9")
        choice.locator("#mount-path").fill("/bucket")
        choice.locator("#mount-credentials").select_option(key)
        before = len(client.list())
        dialog.get_by_role("button", name="Create").click()
        alert = dialog.get_by_role("alert")
        expect(alert).to_contain_text("mounts[0].endpoint")  # the name resolved; the address refused
        choice.locator("#mount-bucket").fill("")
        choice.locator("#sync-bucket").fill("user-runs")
        choice.locator("#sync-endpoint").fill("http://127.0.0.1:9")
        choice.locator("#sync-credentials").select_option(key)
        dialog.get_by_role("button", name="Create").click()
        expect(alert).to_contain_text("sync.endpoint")
        assert len(client.list()) == before  # nothing half-created

        choice.locator("#sync-bucket").fill("")
        shell_name = f"with-volume-{secrets.token_hex(3)}"
        dialog.get_by_label("Name").fill(shell_name)
        dialog.get_by_role("button", name="Create").click()
        created = page.locator("#fleet-table tr", has_text=shell_name)
        expect(created).to_have_attribute("data-state", "running")
        shell_id = created.get_attribute("data-shell")
        assert shell_id is not None
        assert client.get(shell_id).commands.run(["sh", "-c", "echo hi > /data/x"]).exit_code == 0
        created.get_by_role("button", name=shell_name).click()
        sheet = page.locator("#shell-storage")
        expect(sheet.locator('li[data-kind="volume"]')).to_contain_text(volume)
        expect(sheet.locator('li[data-kind="volume"]')).to_contain_text("/data")
        expect(sheet.locator("#sync-status")).to_have_attribute("data-state", "off")
        client.get(shell_id).kill()
        shell_id = None

        show(page, "Volumes")
        line = page.locator(f'#volumes-table tr[data-volume="{volume}"]')
        line.get_by_role("button", name=f"Delete volume {volume}").click()
        page.locator("#storage-delete-go").click()
        expect(line).to_have_count(0)
        keyline = page.locator(f'#bucket-keys-table tr[data-bucket-key="{key}"]')
        keyline.get_by_role("button", name=f"Delete credentials {key}").click()
        page.locator("#storage-delete-go").click()
        expect(keyline).to_have_count(0)
        assert api.get(f"/v1/volumes/{volume}").status_code == 404
    finally:
        if shell_id is not None:
            client.get(shell_id).kill()
        api.delete(f"/v1/volumes/{volume}")
        api.delete(f"/v1/bucket-credentials/{key}")
