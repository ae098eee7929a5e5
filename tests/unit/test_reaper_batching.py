"""The reaper forgets the connection-tracking entries of every job queued meanwhile with one dump,
and still releases each slot only after its entries are forgotten; the address matcher answers
the same for a set (compared packed) and any other container."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Container

import pytest

from shells.runtime.network import conntrack, reaper
from shells.runtime.network.reaper import Reaper

A, B, C = (ipaddress.IPv4Address(f"10.99.0.{i}") for i in (1, 2, 3))


def test_jobs_queued_meanwhile_share_one_dump_and_each_slot_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = threading.Event()
    forgotten: list[set[ipaddress.IPv4Address]] = []
    released: list[tuple[int, int]] = []  # (slot, dumps done when it was released)
    deleted: list[str] = []

    def forget(addresses: Container[ipaddress.IPv4Address]) -> int:
        gate.wait(5)
        assert isinstance(addresses, set)
        forgotten.append(set(addresses))
        return 0

    def delete_ports(names: list[str]) -> None:
        if names == ["bad"]:
            raise OSError("gone wrong")
        deleted.extend(names)

    monkeypatch.setattr(conntrack, "forget", forget)
    monkeypatch.setattr(reaper, "_delete_ports", delete_ports)
    r = Reaper(lambda slot: released.append((slot, len(forgotten))))
    r.submit(1, ["p1"], {A})
    for _ in range(100):  # the worker has taken job 1 and waits in its dump
        if r._jobs.unfinished_tasks == 1 and r._jobs.empty():
            break
        threading.Event().wait(0.01)
    r.submit(2, ["bad"], {B})  # a port that fails to go: its entries are forgotten all the same
    r.submit(3, ["p3"], {C})
    gate.set()
    r.settle()
    assert forgotten == [{A}, {B, C}]
    assert released == [(1, 1), (2, 2), (3, 2)]
    assert deleted == ["p1", "p3"]


def test_a_set_and_a_network_match_the_same_addresses() -> None:
    inside = ipaddress.IPv4Address("10.99.0.7")
    outside = ipaddress.IPv4Address("10.98.0.7")
    net = ipaddress.IPv4Network("10.99.0.0/24")
    for wanted in (set(net), frozenset(net), net):
        match = conntrack._matcher(wanted)
        assert match(inside.packed)
        assert not match(outside.packed)
