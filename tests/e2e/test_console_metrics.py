"""The detail sheet's metrics charts in a real browser against the real server: CPU, memory and disk
of the shell drawn from ``GET /v1/shells/{id}/metrics``, with the newest values beside them."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from shells.sdk import Shell

from .console_page import browser, open_page, open_sheet, sign_in
from .harness import ServerProcess

__all__ = ["browser", "open_page"]  # fixtures, used by name


def test_the_detail_sheet_charts_the_shells_cpu_memory_and_disk(
    open_page: Callable[..., Page], server: ServerProcess, make_shell: Callable[..., Shell]
) -> None:
    shell = make_shell("python", name="charted")
    assert shell.commands.run("dd if=/dev/urandom of=/workspace/blob bs=1M count=8 conv=fsync").exit_code == 0
    page = open_page()
    sign_in(page, server.token)
    open_sheet(page, shell)
    charts = page.locator("#shell-metrics")
    expect(charts).to_be_visible(timeout=30_000)
    two_or_more = re.compile(r"^[01]$")
    expect(page.locator("#metric-memory")).not_to_have_attribute("data-count", two_or_more, timeout=30_000)
    for name in ("CPU", "Memory", "Disk"):
        expect(page.get_by_role("img", name=re.compile(f"^{name}: .* now, peak "))).to_be_visible()
    expect(page.locator("#metric-memory figcaption strong")).to_contain_text("MiB")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
        served = api.get(f"/v1/shells/{shell.id}/metrics").json()["samples"]
    shown = int(page.locator("#metric-memory").get_attribute("data-last") or "0")
    assert shown in [s["memory_bytes"] for s in served] and shown > 0
