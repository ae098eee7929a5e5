"""The doors besides REST and the SDK, against the local cluster (``make cluster-up``): the official
MCP client creates a shell in region ``us`` through one replica and runs commands in it through
either replica (streamable HTTP, and ``shells mcp`` on stdio); the console, in a real browser,
lists shells with their region and node, and its create dialog offers exactly the regions
``GET /v1/info`` lists and places the shell in the one chosen."""

from __future__ import annotations

import secrets

import httpx
import pytest
from playwright.sync_api import Browser, expect

from .console_page import browser, create_from_dialog, row, sign_in
from .local_cluster import NODES, LocalCluster
from .test_mcp import connect, ok

__all__ = ["browser"]  # a fixture, used by name


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    return local_cluster


@pytest.mark.anyio
async def test_an_mcp_agent_creates_in_us_and_runs_commands_through_either_replica(
    cluster: LocalCluster,
) -> None:
    async with connect(cluster.replicas[0], cluster.token, "http") as client:
        made = ok(await client.call_tool("shells_create", {"language": "python", "region": "us"}))
        shell = made["shell"]
        listed = await client.call_tool("shells_list", {})
        text = listed.content[0].text  # type: ignore[union-attr]
    try:
        assert (shell["region"], shell["node"], shell["state"]) == ("us", "us-1", "running")
        assert f"{shell['id']}" in text and "region=us node=us-1" in text
        for replica, transport in ((0, "http"), (1, "http"), (1, "stdio")):
            async with connect(cluster.replicas[replica], cluster.token, transport) as client:
                ran = ok(await client.call_tool(
                    "shells_exec", {"shell_id": shell["id"], "command": f"echo via-{replica}-{transport}"}
                ))  # fmt: skip
                assert (ran["stdout"], ran["exit_code"]) == (f"via-{replica}-{transport}\n", 0)
    finally:
        cluster.client(1).get(shell["id"]).kill()


def test_the_console_shows_region_and_node_and_creates_in_a_region_of_info(
    browser: Browser, cluster: LocalCluster
) -> None:
    eu = cluster.client(0).create("python", region="eu")
    made: list[str] = [eu.id]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(cluster.replicas[1].url + "/")  # the other replica: the record is shared
        sign_in(page, cluster.token)
        listed = row(page, eu.id)
        expect(listed).to_have_attribute("data-state", "running")
        expect(listed.locator("td[data-node]")).to_have_text(eu.info.node)
        expect(listed.locator("td", has_text="eu").first).to_be_visible()

        page.get_by_role("button", name="New shell").click()
        dialog = page.get_by_role("dialog", name="New shell")
        regions = httpx.get(cluster.base_url + "/v1/info").json()["regions"]
        offered = dialog.locator("#region option")
        expect(offered).to_have_count(len(regions))
        assert sorted(offered.evaluate_all("os => os.map(o => o.value)")) == sorted(regions) == ["eu", "us"]
        dialog.locator("#region").select_option("us")
        dialog.get_by_role("radio", name="bash").check()
        dialog.locator('input[name="runtime"][value="container"]').check()
        shell_id, created = create_from_dialog(page, dialog, f"in-us-{secrets.token_hex(3)}")
        made.append(shell_id)
        record = cluster.client(0).get(shell_id).info
        assert (record.region, record.node) == ("us", "us-1")
        assert NODES[record.node][0] == "us"
        expect(created.locator("td[data-node]")).to_have_text("us-1")
    finally:
        context.close()
        for shell_id in made:
            cluster.client(0).get(shell_id).kill()
