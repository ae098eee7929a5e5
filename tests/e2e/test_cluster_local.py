"""The local cluster of ``make cluster-up`` (``tests.e2e.local_cluster``, started here exactly as a
user starts it): shells land in the region they ask for, on that region's nodes; an exec stream and a
terminal work through either control-plane replica to a shell on a node in another network
namespace; killing the replica that holds the Lease with SIGKILL in the middle of an exec ends that
exec with a typed error (or lets it finish), the other replica keeps serving the same shell and takes
the singleton duties within one Lease period; and what no node can take is refused with a typed 4xx
before anything is made."""

from __future__ import annotations

import json
import re
import signal
import time

import httpx
import pytest
from websockets.sync.client import connect

from shells.cluster.membership import measured_offer
from shells.domain.shapes import SHAPES
from shells.sdk import CommandExit, CommandOutput, Shell, Unavailable

from .local_cluster import NODES, TEST_LEASE_S, LocalCluster

LEASE_S = TEST_LEASE_S
WAIT_S = 30.0


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The one cluster of the session (tests/e2e/conftest.py)."""
    return local_cluster


def in_region(region: str) -> set[str]:
    return {name for name, (where, _) in NODES.items() if where == region}


def test_shells_land_on_the_nodes_of_their_region(cluster: LocalCluster) -> None:
    client = cluster.client()
    made = {region: [client.create("python", region=region) for _ in range(2)] for region in ("eu", "us")}
    default = client.create("python")  # no region: the server's own (SHELLS_REGION=eu)
    try:
        for region, shells in made.items():
            for shell in shells:
                assert (shell.info.region, shell.info.node in in_region(region)) == (region, True)
                assert cluster.holds(shell.info.node, shell.id)  # on that node's own disk
                others = set(NODES) - {shell.info.node}
                assert not any(cluster.holds(other, shell.id) for other in others)
        assert default.info.region == "eu" and default.info.node in in_region("eu")
        info = httpx.get(cluster.base_url + "/v1/info").json()
        assert {r: v["nodes"] for r, v in info["regions"].items()} == {"eu": 2, "us": 1}
        assert info["regions"]["us"]["runtimes"] == ["container"]
    finally:
        for shell in [*made["eu"], *made["us"], default]:
            shell.kill()


def streamed(shell: Shell, script: str) -> str:
    with shell.commands.stream(script) as events:
        seen = list(events)
    assert isinstance(seen[-1], CommandExit) and seen[-1].exit_code == 0, seen[-1]
    return "".join(e.data for e in seen if isinstance(e, CommandOutput) and isinstance(e.data, str))


def terminal_says(shell: Shell) -> bytes:
    """Run ``echo $((6*7))`` in a terminal of ``shell`` (a WebSocket through its replica)."""
    cred = shell.term()
    with connect(cred.url + "?cols=80&rows=24", open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"type": "auth", "token": cred.token}))
        assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "ready"
        ws.send(b"echo $((6*7)); exit 3\n")
        screen = b""
        while isinstance(message := ws.recv(timeout=WAIT_S), bytes):
            screen += message
        assert json.loads(message) == {"type": "exit", "exit_code": 3, "signal": None}
    return screen


def test_exec_and_terminal_through_either_replica_reach_a_node_in_another_netns(
    cluster: LocalCluster,
) -> None:
    shell = cluster.client(0).create("python", region="us")
    try:
        assert shell.info.node == "us-1"
        for replica in (0, 1):
            same = cluster.client(replica).get(shell.id)  # the record is shared: either replica knows it
            out = streamed(same, f"for i in 1 2 3; do echo r{replica}-$i; sleep 0.1; done")
            assert out == f"r{replica}-1\nr{replica}-2\nr{replica}-3\n"
            host = cluster.replicas[replica].url.split("://")[1]
            assert f"://{host}/" in same.term().url  # the terminal goes through this replica
            assert re.search(rb"[\r\n]42\r\n", terminal_says(same))
    finally:
        shell.kill()


def test_killing_the_lease_holder_mid_exec_leaves_the_other_serving_with_the_duties(
    cluster: LocalCluster,
) -> None:
    holder = cluster.wait_for_holder(LEASE_S + 10)
    other = 1 - holder
    assert not cluster.runs_duties(other)
    shell = cluster.client(holder).create("python", region="eu")
    try:
        outcome, killed_at = cluster.kill_mid_exec(holder, shell.id)
        assert isinstance(outcome, Unavailable | CommandExit), outcome
        # the other replica serves the same shell on its node at once ...
        survivor = cluster.client(other).get(shell.id)
        assert survivor.commands.run("echo still here").stdout == "still here\n"
        # ... and holds the singleton duties within one Lease period of the kill
        while not cluster.runs_duties(other):
            assert time.monotonic() - killed_at < LEASE_S + LEASE_S / 6 + 2, "the duties did not move"
            time.sleep(0.1)
    finally:
        cluster.replicas[holder].stop(signal.SIGKILL)
        cluster.replicas[holder].start()  # back for whatever runs next, as a new Lease contender
        shell.kill()


def oversized_shape(cluster: LocalCluster) -> str | None:
    """A shape larger than this machine (every node agent here offers the whole machine), or None."""
    room = measured_offer("probe", "", "eu", "", [], "", cluster.nodes["eu-1"].data_dir)
    return next((s.name for s in SHAPES.values() if not room.has_room(s)), None)


def test_what_no_node_can_take_is_refused_with_a_typed_error(cluster: LocalCluster) -> None:
    http = httpx.Client(base_url=cluster.base_url, headers={"Authorization": f"Bearer {cluster.token}"})
    before = len(http.get("/v1/shells").json()["shells"])
    python = {"language": "python"}
    refusals = {
        "unknown region": (python | {"region": "ap"}, 400, "unknown_region"),
        "class not in the region": (python | {"region": "us", "runtime": "wasm"}, 409, "no_capacity"),
        "microvm outside its region": (python | {"region": "us", "runtime": "microvm"}, 409, "no_capacity"),
    }
    big = oversized_shape(cluster)
    if big is not None:
        refusals["shape too big"] = (python | {"region": "eu", "shape": big}, 409, "no_capacity")
    else:
        print("every shape fits this machine: the oversized-shape refusal is not exercised here")
    for why, (body, status, code) in refusals.items():
        answer = http.post("/v1/shells", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (why, answer.text)
    assert len(http.get("/v1/shells").json()["shells"]) == before  # nothing half-made
    http.close()
