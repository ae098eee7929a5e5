"""The console's Secrets and Webhooks views and the create dialog's choice of secrets, in a real browser
against the real server: a secret is created, rotated and deleted from the page, and its value is
never on the page again once sent; a webhook is created with chosen events, its secret shown once,
a "send test" arrives signed at a receiver on the fake internet and shows in the delivery log; a
shell created from the dialog with a secret holds its placeholder, not its value."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from shells.domain.webhooks import WEBHOOK_EVENTS
from shells.sdk import Shells
from tests.support.fake_internet import FakeInternet
from tests.support.webhook_receiver import WebhookReceiver

from .console_page import browser, open_page, sign_in
from .harness import ServerProcess

__all__ = ["browser", "open_page"]  # fixtures, used by name


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with FakeInternet() as net, WebhookReceiver(net.netns_path, net.d, 9103) as rec:
        yield rec


def show(page: Page, view: str) -> None:
    page.get_by_role("button", name=view, exact=True).click()
    expect(page.locator(f"#view-{view.lower()}")).to_have_attribute("aria-current", "page")
    expect(page.locator(f"#{view.lower()}-view")).to_have_attribute("aria-busy", "false")


def nowhere_on(page: Page, value: str) -> None:
    """The value is in no text, attribute, input or storage of the page."""
    assert value not in page.content()
    inputs = page.eval_on_selector_all("input", "els => els.map(e => e.value)")
    assert value not in json.dumps(inputs)
    storage = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert value not in storage


def test_a_secret_is_created_rotated_and_deleted_and_its_value_never_shown(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client
) -> None:
    name = f"CONSOLE_{secrets.token_hex(3).upper()}"
    value, rotated = f"v1-{secrets.token_hex(12)}", f"v2-{secrets.token_hex(12)}"
    page = open_page()
    sign_in(page, server.token)
    show(page, "Secrets")
    try:
        page.get_by_role("button", name="New secret").click()
        dialog = page.get_by_role("dialog", name="New secret")
        dialog.locator("#secret-name").fill(name)
        dialog.locator("#secret-hosts").fill("*")
        dialog.locator("#secret-value").fill(value)
        expect(dialog.locator("#secret-value")).to_have_attribute("type", "password")
        dialog.get_by_role("button", name="Create").click()
        expect(dialog.get_by_role("alert")).to_contain_text("hosts")  # the server's typed 400, shown
        assert api.get(f"/v1/secrets/{name}").status_code == 404  # nothing half-created

        dialog.locator("#secret-hosts").fill("api.example.org, *.example.net")
        dialog.get_by_role("button", name="Create").click()
        line = page.locator(f'#secrets-table tr[data-secret="{name}"]')
        expect(line).to_contain_text("api.example.org")
        expect(line).to_contain_text("*.example.net")
        expect(page.locator("#secret-create")).to_have_count(0)
        record = api.get(f"/v1/secrets/{name}").json()
        assert record["hosts"] == ["api.example.org", "*.example.net"] and record["version"] == 1
        nowhere_on(page, value)

        line.get_by_role("button", name=f"Rotate {name}").click()
        rotate = page.get_by_role("dialog", name=f"Rotate {name}")
        rotate.locator("#secret-value").fill(rotated)
        rotate.get_by_role("button", name="Rotate").click()
        expect(line).to_have_attribute("data-version", "2")
        assert api.get(f"/v1/secrets/{name}").json()["version"] == 2
        nowhere_on(page, value)
        nowhere_on(page, rotated)

        line.get_by_role("button", name=f"Delete {name}").click()
        page.locator("#secret-delete-go").click()
        expect(line).to_have_count(0)
        assert api.get(f"/v1/secrets/{name}").status_code == 404
    finally:
        api.delete(f"/v1/secrets/{name}")


def test_a_webhook_is_created_tested_logged_and_deleted(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client, receiver: WebhookReceiver
) -> None:
    page = open_page("dark")
    sign_in(page, server.token)
    show(page, "Webhooks")
    page.get_by_role("button", name="New webhook").click()
    dialog = page.get_by_role("dialog", name="New webhook")
    boxes = dialog.locator('input[name="event"]')
    expect(boxes).to_have_count(len(WEBHOOK_EVENTS))
    assert [boxes.nth(i).get_attribute("value") for i in range(boxes.count())] == list(WEBHOOK_EVENTS)
    dialog.get_by_label("URL").fill("http://169.254.169.254/latest")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_role("alert")).to_contain_text("metadata")

    dialog.get_by_label("URL").fill(receiver.url)
    for event in WEBHOOK_EVENTS:
        if event not in ("created", "deleted"):
            dialog.get_by_role("checkbox", name=event, exact=True).uncheck()
    dialog.get_by_role("button", name="Create").click()
    made = page.locator("#webhook-made")
    shown = made.locator("#webhook-secret-once").inner_text().strip()
    hook_id = made.get_attribute("data-webhook")
    assert hook_id and len(shown) >= 16
    try:
        record = api.get(f"/v1/webhooks/{hook_id}").json()
        assert record["events"] == ["created", "deleted"] and record["secret"] is None
        page.get_by_role("button", name="Done").click()
        nowhere_on(page, shown)
        line = page.locator(f'#webhooks-table tr[data-webhook="{hook_id}"]')
        expect(line).to_contain_text(receiver.url)
        expect(line).to_contain_text("created")

        line.get_by_role("button", name="Send a test").click()
        log = page.locator(f'#deliveries[data-webhook="{hook_id}"]')
        expect(log.locator('tr[data-event="test"]')).to_have_attribute("data-state", "delivered")
        tests = [r for r in receiver.bodies() if json.loads(r.body).get("webhook_id") == hook_id]
        assert len(tests) == 1 and tests[0].signed_with(shown)  # the secret shown once signs it

        line.get_by_role("button", name="Delete").click()
        page.locator("#webhook-delete-go").click()
        expect(line).to_have_count(0)
        expect(log).to_have_count(0)
        assert api.get(f"/v1/webhooks/{hook_id}").status_code == 404
    finally:
        api.delete(f"/v1/webhooks/{hook_id}")


def test_the_create_dialog_gives_a_shell_the_chosen_secret_as_a_placeholder(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client, client: Shells
) -> None:
    name = f"DIALOG_{secrets.token_hex(3).upper()}"
    value = f"dialog-{secrets.token_hex(12)}"
    body = {"name": name, "value": value, "hosts": ["api.example.org"]}
    assert api.post("/v1/secrets", json=body).status_code == 201
    shell_id = None
    try:
        page = open_page()
        sign_in(page, server.token)
        page.get_by_role("button", name="New shell").click()
        dialog = page.get_by_role("dialog", name="New shell")
        dialog.get_by_role("radio", name="bash").check()
        dialog.locator('input[name="runtime"][value="container"]').check()
        expect(dialog.locator("#secret-choice")).to_have_count(0)  # sealed: nothing to broker
        dialog.get_by_role("radio", name="internet").check()
        choice = dialog.locator("#secret-choice")
        choice.get_by_role("checkbox", name=name).check()
        expect(choice).to_contain_text("api.example.org")
        shell_name = f"with-secret-{secrets.token_hex(3)}"
        dialog.get_by_label("Name").fill(shell_name)
        dialog.get_by_role("button", name="Create").click()
        created = page.locator("#fleet-table tr", has_text=shell_name)
        expect(created).to_have_attribute("data-state", "running")
        shell_id = created.get_attribute("data-shell")
        assert shell_id is not None
        out = client.get(shell_id).commands.run(["sh", "-c", f'printf %s "${name}"'], timeout=60)
        assert out.exit_code == 0 and str(out.stdout).startswith("shells-secret-"), out
        assert value not in str(out.stdout)
    finally:
        if shell_id is not None:
            client.get(shell_id).kill()
        api.delete(f"/v1/secrets/{name}")


def test_the_create_dialog_turns_wake_on_request_off_for_a_class_that_pauses(
    open_page: Callable[..., Page], server: ServerProcess, client: Shells
) -> None:
    if not any(r.runtime == "microvm" and r.available for r in client.runtimes()):
        pytest.skip("needs the microvm class on this host (QEMU and its tools)")
    page = open_page()
    sign_in(page, server.token)
    page.get_by_role("button", name="New shell").click()
    dialog = page.get_by_role("dialog", name="New shell")
    dialog.get_by_role("radio", name="bash").check()
    dialog.locator('input[name="runtime"][value="container"]').check()
    expect(dialog.locator("#wake-choice")).to_have_count(0)  # a container cannot pause
    dialog.locator('input[name="runtime"][value="microvm"]').check()
    expect(dialog.locator("#auto-resume")).to_be_checked()  # the server's default
    dialog.locator("#auto-resume").uncheck()
    shell_name = f"no-wake-{secrets.token_hex(3)}"
    dialog.get_by_label("Name").fill(shell_name)
    dialog.get_by_role("button", name="Create").click()
    created = page.locator("#fleet-table tr", has_text=shell_name)
    expect(created).to_have_attribute("data-state", "running")
    shell_id = created.get_attribute("data-shell")
    assert shell_id is not None
    try:
        assert client.get(shell_id).info.auto_resume is False
        created.get_by_role("button", name=shell_name).click()
        expect(page.locator("#detail")).to_contain_text("only when resumed")
    finally:
        client.get(shell_id).kill()
