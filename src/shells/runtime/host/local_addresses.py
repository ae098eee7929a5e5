"""The addresses this host answers on itself (every interface's, in the host's network namespace),
read from the kernel's tables: what a webhook, which the server itself sends, must never target."""

from __future__ import annotations

import ipaddress
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def local_addresses(proc: Path = Path("/proc/net")) -> set[IPAddress]:
    """IPv4 ``LOCAL`` routes of ``fib_trie`` and every address of ``if_inet6``."""
    found: set[IPAddress] = set()
    last = ""
    try:
        for line in (proc / "fib_trie").read_text(encoding="ascii").splitlines():
            text = line.strip()
            if text.startswith(("|--", "+--")):
                last = text[3:].strip().split()[0]
            elif text == "/32 host LOCAL" and last:
                found.add(ipaddress.IPv4Address(last))
    except (OSError, ValueError):
        pass
    try:
        for line in (proc / "if_inet6").read_text(encoding="ascii").splitlines():
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError, IndexError):
        pass
    return found
