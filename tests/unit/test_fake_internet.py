"""The tests' internet itself: instances running at once on one host (parallel workers, two test
runs) each get addresses, routes and a link of their own, answer there, and leave nothing behind."""

from __future__ import annotations

import socket
import subprocess

from tests.support.fake_internet import FakeInternet
from tests.support.root import needs_root

pytestmark = needs_root("network namespaces, veths and host routes")


def fetch(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=2) as conn:
        return conn.recv(200)


def test_two_instances_at_once_each_answer_at_their_own_addresses() -> None:
    with FakeInternet() as one, FakeInternet() as two:
        assert one.addresses.slot != two.addresses.slot
        assert not {one.a, one.b, one.c, one.d, one.metadata} & {two.a, two.b, two.c, two.d, two.metadata}
        for net in (one, two):
            for address in (net.a, net.d):
                assert fetch(address, 80) == f"{address}:80 from {net.host_address}\n".encode()
                assert net.arrivals(address, 80) == [str(net.host_address)]
        links = [one.host_link, two.host_link]
    listed = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert not [link for link in links if link in listed]
