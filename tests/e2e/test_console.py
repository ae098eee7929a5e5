"""The web console in a real browser (Debian's Chromium, headless, driven by Playwright) against the
real server: sign in, create from the dialog and watch the row turn running, a change made by the CLI
arriving live, the terminal, an action landing in the activity terminal, the danger zone's typed
confirmation, masked credentials that expire, and the screenshots shown in the README."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from shells.sdk import Shell, Shells

from .console_page import SCREENSHOTS_ENV, browser, create_from_dialog, open_page, open_sheet, row, sign_in
from .harness import SHELLS, ServerProcess

__all__ = ["browser", "open_page"]  # fixtures, used by name

TERMINAL_BLACK = "rgb(11, 13, 16)"


def test_sign_in_sees_what_the_token_sees_and_sign_out_forgets_it(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell
) -> None:
    page = open_page()
    page.get_by_label("API token").fill("shl_forged_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unauthenticated")
    sign_in(page, server.token)
    expect(row(page, shell.id)).to_have_attribute("data-state", "running")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    page.reload()
    expect(page.get_by_label("API token")).to_be_visible()  # the token did not outlive the sign-out


def test_a_shell_created_in_the_dialog_appears_and_turns_running_without_a_reload(
    open_page: Callable[..., Page], server: ServerProcess, client: Shells
) -> None:
    page = open_page()
    sign_in(page, server.token)
    page.evaluate("window.__same_page = true")
    page.get_by_role("button", name="New shell").click()
    dialog = page.get_by_role("dialog", name="New shell")
    dialog.get_by_role("radio", name="bash").check()
    matrix = {(r.language, r.runtime): r for r in client.runtimes()}
    assert not matrix[("bash", "wasm")].available  # WASI has no real POSIX shell
    for klass in ("wasm", "microvm", "container"):
        radio = dialog.locator(f'input[name="runtime"][value="{klass}"]')
        offer = matrix[("bash", klass)]
        if offer.available:
            expect(radio).to_be_enabled()
        else:  # a combination the matrix does not offer is disabled, with the server's reason beside it
            expect(radio).to_be_disabled()
            expect(dialog.locator(f"#why-{klass}")).to_have_text(offer.notes)
    expect(dialog.get_by_role("radio", name="sealed")).to_be_checked()
    dialog.locator('input[name="runtime"][value="container"]').check()
    name = f"from-dialog-{secrets.token_hex(3)}"
    shell_id, _ = create_from_dialog(page, dialog, name)
    try:
        record = client.get(shell_id).info
        assert (record.language, record.runtime, record.network.mode) == ("bash", "container", "sealed")
        assert page.evaluate("window.__same_page") is True  # no reload happened on the way
    finally:
        client.get(shell_id).kill()
    expect(row(page, shell_id)).to_have_count(0)  # and the deletion arrives live too


def test_a_change_made_with_the_cli_updates_the_row_live(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell
) -> None:
    page = open_page()
    sign_in(page, server.token)
    expect(row(page, shell.id)).to_have_attribute("data-state", "running")
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token}
    subprocess.run([*SHELLS, "action", shell.id, "stop"], check=True, env=env, capture_output=True)
    expect(row(page, shell.id)).to_have_attribute("data-state", "stopped")
    expect(row(page, shell.id).locator(".badge")).to_have_text("stopped")
    page.locator("#filter-state").select_option("running")
    expect(row(page, shell.id)).to_have_count(0)
    page.locator("#filter-state").select_option("stopped")
    expect(row(page, shell.id)).to_have_count(1)


def test_the_terminal_runs_echo_and_shows_its_output(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell
) -> None:
    page = open_page()
    sign_in(page, server.token)
    open_sheet(page, shell)
    page.get_by_role("button", name="Open terminal").click()
    expect(page.locator("#term-status")).to_have_text("connected")
    page.locator("#terminal").click()
    page.keyboard.type("echo console-$((6*7))\n")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text("console-42")
    assert page.locator("#terminal .xterm-screen").evaluate(
        "el => getComputedStyle(el.closest('.xterm-host')).backgroundColor"
    ) == TERMINAL_BLACK  # fmt: skip


def test_a_snapshot_from_the_sheet_lands_in_the_always_dark_activity_terminal(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell, client: Shells
) -> None:
    page = open_page("light")
    sign_in(page, server.token)
    open_sheet(page, shell)
    activity = page.get_by_role("log")
    assert activity.evaluate("el => getComputedStyle(el).backgroundColor") == TERMINAL_BLACK
    page.get_by_role("button", name="Snapshot", exact=True).click()
    expect(activity).to_contain_text("snapshot: done")
    snapshots = [s.id for s in client.snapshots.list(shell.id)]
    assert snapshots
    expect(activity).to_contain_text(f"snapshot {snapshots[-1]} taken")
    expect(activity).to_contain_text(f"snapshot ok — {snapshots[-1]}")  # the event, from the live feed


def test_wipe_state_through_the_danger_zone_needs_the_shells_name_typed(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell
) -> None:
    shell.files.write("/workspace/keep.txt", "precious")
    page = open_page()
    sign_in(page, server.token)
    open_sheet(page, shell)
    page.locator("#danger-wipe_state").click()
    confirm = page.get_by_role("dialog")
    go = confirm.get_by_role("button", name="Wipe state")
    expect(go).to_be_disabled()
    confirm.get_by_label("to confirm").fill(shell.info.name + "x")
    expect(go).to_be_disabled()
    go.evaluate("el => el.form.requestSubmit()")  # submitting anyway does nothing
    assert shell.files.exists("/workspace/keep.txt")
    confirm.get_by_label("to confirm").fill(shell.info.name)
    go.click()
    expect(page.get_by_role("log")).to_contain_text("wipe_state: done")
    assert not shell.files.exists("/workspace/keep.txt")
    wiped = [e for e in shell.events() if e.action == "wipe_state"]
    assert len(wiped) == 1 and wiped[0].door == "console" and wiped[0].destructive


def test_a_credential_is_masked_until_revealed_and_visibly_dead_after_expiry(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell
) -> None:
    page = open_page()
    page.clock.install()
    sign_in(page, server.token)
    open_sheet(page, shell)
    page.get_by_role("button", name="Credentials…").click()
    dialog = page.get_by_role("dialog", name="Term credentials")
    dialog.get_by_label("Lifetime").select_option("60")
    dialog.get_by_role("button", name="Mint").click()
    secret = dialog.locator("#cred-token")
    expect(secret).to_contain_text("•")
    expect(dialog.locator("#cred-countdown")).to_contain_text("expires in")
    masked = secret.inner_text()
    dialog.get_by_role("button", name="Reveal").click()
    expect(dialog.get_by_role("button", name="Hide")).to_have_attribute("aria-pressed", "true")
    token = secret.inner_text().strip()
    assert token.startswith("term_") and "•" not in token and token != masked.strip()
    assert token[-4:] == masked.strip()[-4:]  # the mask shows only the tail
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.locator("#cred-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.clock.fast_forward("01:01")
    expect(dialog.locator("#credential")).to_have_attribute("data-expired", "true")
    expect(dialog.locator("#cred-countdown")).to_contain_text("Expired")
    expect(dialog.locator("#cred-copy")).to_be_disabled()
    expect(secret).not_to_contain_text(token)  # a dead credential is masked again


def test_the_console_fits_a_laptop_window_and_takes_its_screenshots(
    open_page: Callable[..., Page], server: ServerProcess, make_shell: Callable[..., Shell], tmp_path: Path
) -> None:
    screenshots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shells = [make_shell("python", name=f"api-{i}") for i in range(2)]
    shells.append(make_shell("bash", name="build-box", network="localhost"))
    shells[0].commands.run("echo hello from the console")
    shells[0].snapshot()
    screenshots.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page = open_page(scheme)
        sign_in(page, server.token)
        open_sheet(page, shells[0])
        expect(page.get_by_role("log")).to_contain_text("snapshot ok")
        page.screenshot(path=str(screenshots / f"console-{scheme}.png"))
        assert (
            page.get_by_role("log").evaluate("el => getComputedStyle(el).backgroundColor") == TERMINAL_BLACK
        )
    page.get_by_role("button", name="Usage", exact=True).click()
    expect(page.locator("#usage-view")).to_have_attribute("aria-busy", "false")
    page.screenshot(path=str(screenshots / "console-usage-dark.png"))
    page.get_by_role("button", name="Pricing", exact=True).click()
    expect(page.locator("#pricing-view")).to_have_attribute("aria-busy", "false")
    page.screenshot(path=str(screenshots / "console-pricing-dark.png"), full_page=True)
    page.get_by_role("button", name="Fleet", exact=True).click()
    page.get_by_role("button", name="New shell").click()
    page.get_by_role("dialog", name="New shell").get_by_role("radio", name="internet").check()
    page.get_by_label("Destination to allow").fill("pypi.org")
    page.get_by_role("button", name="Add").click()
    page.screenshot(path=str(screenshots / "console-create-dark.png"))
    laptop = open_page("light", width=1280, height=720)
    sign_in(laptop, server.token)
    open_sheet(laptop, shells[0])
    assert laptop.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways scrolling
    expect(laptop.get_by_role("button", name="Open terminal")).to_be_in_viewport()
    for name in (
        "console-light.png",
        "console-dark.png",
        "console-create-dark.png",
        "console-usage-dark.png",
        "console-pricing-dark.png",
    ):
        assert (screenshots / name).stat().st_size > 10_000, name
