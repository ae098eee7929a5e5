"""Regions: create names one, the shell is placed on a node there that offers its class and has
room, and the record says where; an unknown region or a region without room is refused with a typed
error and nothing is created. Through REST, both SDKs, the CLI and MCP, on the fake node in-process.
The cluster's nodes are given as offers (what membership reads from their Leases)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from shells.cli import shell_commands
from shells.cli.main import main as shells_cli
from shells.domain.errors import NoCapacity, UnknownRegion
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from shells.sdk import AsyncShells

from ..support.inprocess import BASE_URL, Instance, serving, serving_blocking

pytestmark = pytest.mark.anyio
GIB = 1024


def offer(name: str, region: str, memory_mib: int = 8192, classes: set[Runtime] | None = None) -> NodeOffer:
    return NodeOffer(
        name, f"{name}:7070", region, f"{region}-1", frozenset(classes or {Runtime.CONTAINER}), "", 4, 4,
        memory_mib, 100 * GIB,
    )  # fmt: skip


NODES = [
    offer("eu-1", "eu"),
    offer("eu-2", "eu", memory_mib=GIB),
    offer("us-1", "us"),
    offer("ap-1", "ap", classes={Runtime.MICROVM}),
]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Instance]:
    """An instance whose home region is eu, placing on three nodes in eu and us."""
    async with serving(tmp_path, region="eu") as running:
        running.control.ctx.nodes = lambda: NODES
        yield running


async def test_info_lists_the_regions_and_what_each_offers(cluster: Instance) -> None:
    async with cluster.http() as http:
        info = (await http.get("/v1/info")).json()
    assert info["regions"] == {
        "ap": {"nodes": 1, "zones": ["ap-1"], "runtimes": ["microvm"], "accel": []},
        "eu": {"nodes": 2, "zones": ["eu-1"], "runtimes": ["container"], "accel": []},
        "us": {"nodes": 1, "zones": ["us-1"], "runtimes": ["container"], "accel": []},
    }


async def test_a_shell_records_the_region_it_was_placed_in(cluster: Instance) -> None:
    async with cluster.client() as admin:
        us = await admin.create("python", region="us")
        home = await admin.create("python")
        assert (us.info.region, home.info.region) == ("us", "eu")
        assert (await admin.get(us.id)).info.region == "us"
        assert (await us.commands.run("echo here")).stdout == "here\n"


async def test_bad_regions_and_full_regions_are_typed_errors_and_create_nothing(cluster: Instance) -> None:
    async with cluster.http() as http:
        answer = await http.post("/v1/shells", json={"language": "python", "region": "mars"})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "unknown_region" and "ap, eu, us" in error["message"]
        answer = await http.post("/v1/shells", json={"language": "python", "region": "ap"})
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["code"] == "no_capacity"
        assert "No node in region 'ap' offers container" in error["message"]
        big = {"language": "python", "region": "us", "shape": "s-8vcpu-16gb"}
        answer = await http.post("/v1/shells", json=big)
        assert answer.status_code == 409
        error = answer.json()["error"]
        assert error["details"] == {"region": "us", "runtime": "container", "shape": "s-8vcpu-16gb"}
        assert "'us'" in error["message"] and "s-8vcpu-16gb" in error["message"]
        answer = await http.post("/v1/shells", json={"language": "python", "region": 7})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    async with cluster.client() as admin:
        with pytest.raises(UnknownRegion):
            await admin.create("python", region="mars")
        with pytest.raises(NoCapacity):
            await admin.create("python", region="eu", shape="s-8vcpu-16gb")
        assert await admin.list() == []


async def test_creates_in_a_region_go_to_the_node_with_room(cluster: Instance) -> None:
    """eu-2 has 1 GiB free: a 2 GiB shape fits only eu-1, and one in us never lands in eu."""
    async with cluster.client() as admin:
        shell = await admin.create("python", region="eu", shape="s-2vcpu-2gb")
        assert shell.info.region == "eu"
    cluster.control.ctx.nodes = lambda: [offer("eu-2", "eu", memory_mib=GIB), NODES[2]]
    async with cluster.client() as admin:
        with pytest.raises(NoCapacity) as refused:
            await admin.create("python", region="eu", shape="s-2vcpu-2gb")
        assert refused.value.details["region"] == "eu"


async def test_one_box_is_one_region_the_settings_name(instance: Instance, admin: AsyncShells) -> None:
    info = await admin.info()
    assert list(info["regions"]) == ["local"]
    assert info["regions"]["local"]["runtimes"] == ["container"]
    shell = await admin.create("python", region="local")
    assert shell.info.region == "local"
    big = await admin.create("python", shape="s-8vcpu-16gb")  # one box takes any shape, as before
    assert big.info.region == "local"
    with pytest.raises(UnknownRegion):
        await admin.create("python", region="eu")


async def test_an_agent_names_the_region_through_mcp(cluster: Instance) -> None:
    transport = httpx2.ASGITransport(app=cluster.app)
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, base_url=BASE_URL) as http,
        Client(streamable_http_client(f"{BASE_URL}/api/agent/invoke", http_client=http)) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "region" in tools["shells_create"].input_schema["properties"]
        made = await client.call_tool("shells_create", {"language": "python", "region": "us"})
        assert not made.is_error and isinstance(made.structured_content, dict)
        assert made.structured_content["shell"]["region"] == "us"
        refused = await client.call_tool("shells_create", {"language": "python", "region": "mars"})
        assert refused.is_error and isinstance(refused.structured_content, dict)
        assert refused.structured_content["error"]["code"] == "unknown_region"


def test_the_sync_sdk_and_the_cli_name_the_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving_blocking(tmp_path) as blocking:
        with blocking.client() as client:
            assert client.create("python", region="local").info.region == "local"
            with pytest.raises(UnknownRegion):
                client.create("python", region="eu")
        monkeypatch.setattr(shell_commands, "connect", lambda: blocking.client(door="cli"))
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = shells_cli(["create", "--region", "local", "--json"])
        assert code == 0 and '"region": "local"' in out.getvalue()
        with redirect_stdout(out), redirect_stderr(err):
            code = shells_cli(["create", "--region", "eu"])
        assert code != 0 and "Region 'eu' is not one of this instance's regions (local)" in err.getvalue()
