"""The local cluster through the URL ``make cluster-up`` prints (``tests.e2e.local_cluster``, the
session's cluster): a load balancer (HAProxy) in front of both control-plane replicas. Requests,
exec streams, terminals, the event stream and an MCP agent's calls pass through it to either
replica; when one replica
is killed with SIGKILL, the stream it was serving ends with a typed error, the other replica's
streams go on, the balancer takes the dead replica out within a couple of seconds, and every
request through the same URL keeps succeeding, even in the moment before it is taken out. The
replica that comes back is put back in. And the cluster's one microvm node runs a microvm shell
(under TCG here) in its region."""

from __future__ import annotations

import io
import re
import signal
import threading
from contextlib import redirect_stdout
from typing import cast

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import CommandExit, CommandOutput, Unavailable
from tests.support.waiting import wait_until

from . import local_cluster as launcher
from .harness import ServerProcess
from .local_cluster import MICROVM_NODE, NODES, LocalCluster
from .sse import FeedReader, running
from .test_cluster_local import streamed, terminal_says
from .test_mcp import connect, ok

TAKEN_OUT_S = 2.0
"""A replica killed is out of the balancer within this: health checks every half second, two
failures (or one refused connection, which makes the checks quicker)."""


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The one cluster of the session (tests/e2e/conftest.py)."""
    return local_cluster


def sessions(cluster: LocalCluster) -> list[int]:
    """Requests the balancer has sent each replica so far, in replica order."""
    states = cluster.balancer.servers()
    return [states[r.data_dir.name].sessions for r in cluster.replicas]


def open_streams(cluster: LocalCluster) -> list[int]:
    """Connections open through the balancer to each replica now (``scur``), in replica order."""
    states = cluster.balancer.servers()
    return [states[r.data_dir.name].current for r in cluster.replicas]


def test_make_cluster_up_prints_the_balancers_url(cluster: LocalCluster) -> None:
    printed = io.StringIO()
    with redirect_stdout(printed):
        launcher._print_usage(cluster.state(), cluster.root)
    out = printed.getvalue()
    assert f"export SHELLS_BASE_URL={cluster.balancer.url} " in out
    assert cluster.balancer.url not in {r.url for r in cluster.replicas}
    assert f"node {MICROVM_NODE} (region eu: container,wasm,microvm)" in out


def test_the_balancer_reaches_both_replicas_and_survives_losing_one(cluster: LocalCluster) -> None:
    client = cluster.client(None)  # through the balancer, as a user with SHELLS_BASE_URL
    before = sessions(cluster)
    shells = {region: client.create("python", region=region) for region in ("eu", "us")}
    feed = FeedReader(cluster.base_url, cluster.token)
    victim = -1
    try:
        for i in range(6):
            assert shells["us"].commands.run(f"echo {i}").stdout == f"{i}\n"
        assert all(now > then for now, then in zip(sessions(cluster), before, strict=True)), (
            "the balancer did not send requests to both replicas"
        )
        assert streamed(shells["eu"], "for i in 1 2 3; do echo lb-$i; done") == "lb-1\nlb-2\nlb-3\n"
        lb_host = cluster.base_url.split("://")[1]
        assert f"://{lb_host}/" in shells["us"].term().url  # the terminal goes through it too
        assert re.search(rb"[\r\n]42\r\n", terminal_says(shells["us"]))
        assert feed.response.status_code == 200
        feed.until(running(shells["us"].id))

        # an exec stream on one replica, the event stream on the other: kill the exec's replica
        feed_on = open_streams(cluster)
        assert sum(feed_on) == 1, f"open connections through the balancer: {feed_on}"
        exec_seen: list[object] = []
        started = threading.Event()
        streaming = threading.Thread(target=stream_ticks, args=(cluster, shells["eu"].id, exec_seen, started))
        streaming.start()
        assert started.wait(60), "the exec stream gave no output"
        both = open_streams(cluster)
        victim = next(i for i, (n, f) in enumerate(zip(both, feed_on, strict=True)) if n > f)
        assert feed_on[victim] == 0, f"the exec stream shares a replica with the event stream: {both}"
        survivor = 1 - victim
        name = cluster.replicas[victim].data_dir.name

        taken_out: list[float] = []
        watcher = threading.Thread(
            target=lambda: taken_out.append(cluster.balancer.wait_for(name, "DOWN", 30))
        )
        cluster.replicas[victim].stop(signal.SIGKILL)
        watcher.start()
        # at once, before the balancer has seen it: every request through it still succeeds
        for i in range(8):
            assert shells["eu"].commands.run(f"echo after-{i}").stdout == f"after-{i}\n"
        watcher.join()
        streaming.join(60)
        assert taken_out and taken_out[0] < TAKEN_OUT_S, f"the dead replica was out after {taken_out}"
        print(f"the killed replica was out of the balancer {taken_out[0]:.2f} s after the kill")
        assert isinstance(exec_seen[-1], Unavailable), exec_seen[-1]  # the cut stream: a typed error

        # the survivor serves everything through the same URL: requests, streams, terminals, events
        after = sessions(cluster)
        made = client.create("python", region="us")
        try:
            assert made.commands.run("echo made-after").stdout == "made-after\n"
            assert streamed(shells["eu"], "echo streamed-after") == "streamed-after\n"
            assert re.search(rb"[\r\n]42\r\n", terminal_says(shells["us"]))
            feed.until(running(made.id))  # the event stream on the survivor went on
        finally:
            made.kill()
        now = sessions(cluster)
        assert now[victim] == after[victim] and now[survivor] > after[survivor]

        # the replica that comes back is put back in
        cluster.replicas[victim].start()
        cluster.balancer.wait_for(name, "UP", 15)
        back = sessions(cluster)[victim]
        for i in range(6):
            assert shells["us"].commands.run(f"echo back-{i}").stdout == f"back-{i}\n"
        assert sessions(cluster)[victim] > back, "the replica that came back gets no requests"
        victim = -1
    finally:
        feed.close()
        if victim >= 0 and cluster.replicas[victim].proc is None:
            cluster.replicas[victim].start()  # back for whatever runs next
        for shell in shells.values():
            shell.kill()


def stream_ticks(cluster: LocalCluster, shell_id: str, seen: list[object], started: threading.Event) -> None:
    """A 6 s exec stream through the balancer; every event (or the error that ended it) into ``seen``."""
    script = "for i in $(seq 1 30); do echo tick$i; sleep 0.2; done"
    try:
        with cluster.client(None).get(shell_id).commands.stream(script) as events:
            for event in events:
                seen.append(event)
                if isinstance(event, CommandOutput):
                    started.set()
    except Unavailable as e:
        seen.append(e)
    finally:
        started.set()


@pytest.mark.anyio
async def test_an_mcp_agent_works_through_the_balancer(cluster: LocalCluster) -> None:
    """The MCP endpoint is stateless, so an agent's requests may go to either replica."""
    # Least connections sends everything to a replica without the stream an earlier test left open
    # on the other: start once nothing is open, so each request may go to either.
    wait_until(lambda: open_streams(cluster) == [0, 0], 30, "the earlier tests' streams closing")
    before = sessions(cluster)
    through = cast(ServerProcess, cluster.balancer)  # connect() needs only its url
    async with connect(through, cluster.token, "http") as client:
        shell = ok(await client.call_tool("shells_create", {"language": "python", "region": "us"}))["shell"]
        try:
            for i in range(20):  # least-connections picks either replica: go on until both served
                call = {"shell_id": shell["id"], "command": f"echo mcp-{i}"}
                ran = ok(await client.call_tool("shells_exec", call))
                assert (ran["stdout"], ran["exit_code"]) == (f"mcp-{i}\n", 0)
                if i >= 3 and all(now > then for now, then in zip(sessions(cluster), before, strict=True)):
                    break
        finally:
            ok(await client.call_tool("shells_delete", {"shell_id": shell["id"]}))
    assert all(now > then for now, then in zip(sessions(cluster), before, strict=True)), (
        "the agent's requests did not reach both replicas"
    )


MICROVM_MISSING = MicrovmBackend.available()


@pytest.mark.skipif(MICROVM_MISSING is not None, reason=f"no microvm class on this host: {MICROVM_MISSING}")
def test_a_microvm_shell_runs_on_the_clusters_microvm_node(cluster: LocalCluster) -> None:
    regions = httpx.get(cluster.base_url + "/v1/info").json()["regions"]
    region = NODES[MICROVM_NODE][0]
    assert "microvm" in regions[region]["runtimes"]
    assert all("microvm" not in offer["runtimes"] for where, offer in regions.items() if where != region)
    vm = cluster.client(None).create("python", runtime="microvm")  # no region: the default, eu
    try:
        assert (vm.info.runtime, vm.info.region, vm.info.node) == ("microvm", region, MICROVM_NODE)
        assert vm.commands.run("python3 -c 'print(6 * 7)'").stdout == "42\n"
        with vm.commands.stream("for i in 1 2 3; do echo vm-$i; done") as events:
            seen = list(events)
        out = "".join(e.data for e in seen if isinstance(e, CommandOutput) and isinstance(e.data, str))
        assert out == "vm-1\nvm-2\nvm-3\n" and isinstance(seen[-1], CommandExit)
    finally:
        vm.kill()
