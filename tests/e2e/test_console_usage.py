"""The console's Usage and Pricing views and the detail sheet's usage slot, in a real browser against
the real server: a shell's cost and billed seconds are exactly what ``GET /v1/usage`` says (in the
table, the chart, the CSV download and the sheet), billing terms show for a platform admin and are
hidden with the server's reason for a member, and pricing lists every class, shape and matrix cell."""

from __future__ import annotations

import csv
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from shells.sdk import Shell

from .console_page import browser, open_page, open_sheet, sign_in
from .harness import ServerProcess
from .tenancy import MEMBER, Tenancy, create_shell

__all__ = ["browser", "open_page"]  # fixtures, used by name


def usage_line(api: httpx.Client, shell_id: str) -> dict[str, Any]:
    r = api.get("/v1/usage", params={"group_by": "shell"})
    assert r.status_code == 200, r.text
    [line] = [line for line in r.json()["lines"] if line["key"] == shell_id]
    return dict(line)


def ran_and_stopped(make_shell: Callable[..., Shell]) -> Shell:
    """A container shell that ran for a moment and is stopped, so its bill no longer moves."""
    shell = make_shell("bash", name=f"metered-{secrets.token_hex(3)}")
    time.sleep(1)
    shell.stop()
    return shell


def show(page: Page, view: str) -> None:
    page.get_by_role("button", name=view, exact=True).click()
    expect(page.locator(f"#view-{view.lower()}")).to_have_attribute("aria-current", "page")
    expect(page.locator(f"#{view.lower()}-view")).to_have_attribute("aria-busy", "false")


def test_the_usage_view_shows_a_shells_cost_as_get_usage_does(
    open_page: Callable[..., Page],
    server: ServerProcess,
    make_shell: Callable[..., Shell],
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    shell = ran_and_stopped(make_shell)
    today = datetime.now(UTC).date().isoformat()
    line = usage_line(api, shell.id)
    assert Decimal(line["cost_usd"]) > 0 and line["seconds"] >= 1
    page = open_page("dark")
    sign_in(page, server.token)
    show(page, "Usage")

    shell_row = page.locator(f'#usage-shells tr[data-shell="{shell.id}"]')
    expect(shell_row).to_contain_text(shell.info.name)
    expect(shell_row.locator("[data-cost]")).to_have_text(f"${line['cost_usd']}")
    expect(shell_row.locator("[data-seconds]")).to_have_text(f"{line['seconds']:.3f}")
    expect(page.locator('#usage-classes li[data-class="container"]')).to_contain_text("$")
    bar = page.locator(f'#usage-days g[data-day="{today}"] rect.bar')
    assert float(bar.get_attribute("height") or 0) > 0  # today's bar is drawn

    terms = api.get("/v1/tenants/default/billing").json()  # the admin token's tenant
    expect(page.locator("#billing")).to_have_attribute("data-visible", "true")
    expect(page.locator("#billing-free")).to_have_text(f"${terms['free_tier_usd']}")
    expect(page.locator("#billing-budget")).to_have_text(
        "none" if terms["budget_usd"] is None else f"${terms['budget_usd']}"
    )

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("usage-default-") and saved.suffix == ".csv"
    with saved.open() as f:
        rows = {r["shell"]: r for r in csv.DictReader(f)}
    assert rows[shell.id]["cost_usd"] == line["cost_usd"]
    assert "total" in rows


def test_a_member_sees_its_own_usage_and_why_billing_is_hidden(
    open_page: Callable[..., Page], tenancy: Tenancy
) -> None:
    tenant = tenancy.tenant("console")
    member = tenancy.caller(tenant, "dana", MEMBER)
    shell_id = create_shell(member)
    try:
        page = open_page()
        sign_in(page, member.token)
        show(page, "Usage")
        expect(page.locator("#billing")).to_have_attribute("data-visible", "false")
        reason = member.http.get(f"/v1/tenants/{tenant}/billing").json()["error"]["message"]
        expect(page.locator("#billing-hidden")).to_contain_text(reason)
        expect(page.locator("#usage-view")).to_contain_text("The shells this token owns (dana)")
        expect(page.locator(f'#usage-shells tr[data-shell="{shell_id}"]')).to_have_count(1)
    finally:
        assert member.http.delete(f"/v1/shells/{shell_id}").status_code == 204


def test_the_pricing_view_lists_every_class_shape_and_matrix_cell(
    open_page: Callable[..., Page], server: ServerProcess, api: httpx.Client
) -> None:
    pricing = api.get("/v1/pricing").json()
    page = open_page()
    sign_in(page, server.token)
    show(page, "Pricing")
    assert set(pricing["classes"]) == {"wasm", "container", "microvm"}
    for klass, rates in pricing["classes"].items():
        rate_row = page.locator(f'#rates tr[data-class="{klass}"]')
        expect(rate_row.locator('[data-rate="vcpu_hour_usd"]')).to_have_text(rates["vcpu_hour_usd"])
        expect(rate_row.locator('[data-rate="gib_hour_usd"]')).to_have_text(rates["gib_hour_usd"])
    for shape in pricing["shapes"]:
        for klass, price in shape["hour_usd"].items():
            cell = page.locator(f'#shape-prices tr[data-shape="{shape["name"]}"] td[data-class="{klass}"]')
            expect(cell).to_have_text(price)
    for offer in pricing["runtimes"]:
        cell = page.locator(
            f'#runtime-matrix tr[data-language="{offer["language"]}"] td[data-class="{offer["runtime"]}"]'
        )
        expect(cell).to_have_attribute("data-available", "true" if offer["available"] else "false")
        expect(cell).to_contain_text(offer["notes"])
    biggest = pricing["shapes"][-1]
    page.get_by_label("Price at shape").select_option(biggest["name"])
    expect(page.locator('#runtime-matrix th[data-class="microvm"]')).to_contain_text(
        f"${biggest['hour_usd']['microvm']}/h"
    )


def test_the_sheets_usage_slot_counts_while_running_and_matches_the_api_once_stopped(
    open_page: Callable[..., Page], server: ServerProcess, shell: Shell, api: httpx.Client
) -> None:
    page = open_page()
    sign_in(page, server.token)
    open_sheet(page, shell)
    slot = page.locator('[data-slot="usage"] #shell-usage')
    expect(slot).to_have_attribute("data-seconds", re.compile(r"^\d+(\.\d+)?$"))
    first = slot.get_attribute("data-seconds") or ""
    expect(slot).not_to_have_attribute("data-seconds", first)  # re-read while it runs...
    assert float(slot.get_attribute("data-seconds") or 0) > float(first)  # ...and grown
    shell.stop()
    expect(page.locator("#detail .badge").first).to_have_text("stopped")
    line = usage_line(api, shell.id)
    expect(page.locator("#shell-usage-seconds")).to_have_text(f"{line['seconds']:.3f} s")
    expect(page.locator("#shell-usage-cost")).to_have_text(f"${line['cost_usd']}")
