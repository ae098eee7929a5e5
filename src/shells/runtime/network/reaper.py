"""Deleting a shell's ports off the caller's path.

Unregistering a veth waits for RCU grace periods inside the kernel (15-30 ms on a busy host), which
would double the time a shell takes to stop. A detached shell's ports already carry no traffic (its
nft entries are gone first, and its netns usually dies with it), so one background thread deletes
them and then forgets their connection-tracking entries. Until it has, the shell's slot stays
reserved: no new shell can get those names or addresses. :meth:`Reaper.settle` waits for it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import threading
from collections.abc import Callable

from . import conntrack
from .rtnl import Netlink

log = logging.getLogger(__name__)

Job = tuple[int, list[str], set[ipaddress.IPv4Address]]


class Reaper:
    def __init__(self, released: Callable[[int], None]) -> None:
        self._released = released
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, slot: int, port_names: list[str], addresses: set[ipaddress.IPv4Address]) -> None:
        """Delete ``port_names`` (those still there), forget ``addresses``, then release ``slot``."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="shells-net-reaper", daemon=True)
                self._thread.start()
        self._jobs.put((slot, port_names, addresses))

    def settle(self) -> None:
        """Wait until every submitted job is done."""
        self._jobs.join()

    def _work(self) -> None:
        """Take every job queued by now at once: one dump of the host's connection-tracking table
        (its cost grows with the host's connections, not the shell's) forgets them all."""
        while True:
            jobs = [self._jobs.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    jobs.append(self._jobs.get_nowait())
            addresses: set[ipaddress.IPv4Address] = set()
            try:
                for slot, names, wanted in jobs:
                    addresses |= wanted
                    try:
                        _delete_ports(names)
                    except Exception:  # the next start-up removes what is left (orphan ports)
                        log.exception("deleting the ports of slot %d failed", slot)
                conntrack.forget(addresses)
            except Exception:  # the next start-up removes what is left (entries)
                log.exception("forgetting the entries of slots %s failed", [job[0] for job in jobs])
            finally:
                for slot, _names, _wanted in jobs:
                    self._released(slot)
                    self._jobs.task_done()


def _delete_ports(names: list[str]) -> None:
    with Netlink() as host:
        for name in names:
            index = host.index(name)
            if index is not None:
                host.delete_link(index)
