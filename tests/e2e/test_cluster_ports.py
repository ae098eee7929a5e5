"""Exposed ports on the local cluster (``make cluster-up``): a port of a shell on a node answers at
the URL the control plane gives, from this machine, across the bridge to that node's ingress proxy
(before, each node's proxy listened on its own namespace's loopback, where nothing outside reached
it)."""

from __future__ import annotations

import httpx

from shells.sdk import Shells
from tests.support.waiting import wait_until

from .local_cluster import LocalCluster

WAIT_S = 30.0


def test_a_port_exposed_on_a_cluster_node_answers_from_the_host(local_cluster: LocalCluster) -> None:
    client: Shells = local_cluster.client(None)  # through the load balancer, as a user would
    shell = client.create("python", network="localhost")
    try:
        shell.files.write("/workspace/hello.txt", b"from a cluster node\n")
        shell.processes.start(["python3", "-m", "http.server", "8000"], cwd="/workspace")
        url = str(shell.ports.expose(8000, public=True).url)
        found: list[str] = []

        def served() -> bool:
            try:
                got = httpx.get(url + "hello.txt", timeout=5)
            except httpx.HTTPError:
                return False
            if got.status_code == 200:
                found.append(got.text)
            return bool(found)

        wait_until(served, WAIT_S, f"{url} answering from the host")
        assert found[0] == "from a cluster node\n"
    finally:
        shell.kill()
