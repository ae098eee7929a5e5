"""Which methods of the node contracts cross the wire, and how each one answers.

One table for both sides: the node agent serves exactly these names (anything else is refused) and
``node.remote`` calls them."""

from __future__ import annotations

BACKEND_SYNC = frozenset({"details", "offers", "templates", "template_meta", "list_templates", "usage"})
"""Plain functions on the node (the control side answers them from what it fetched)."""
BACKEND_CALLS = frozenset(
    {
        "capture_template",
        "delete_template",
        "create",
        "start",
        "stop",
        "set_network",
        "destroy",
        "reset",
        "snapshot",
        "pause",
        "resume",
        "fork",
        "delete_snapshot",
        "logs",
        "inventory",
        "processes",
        "signal",
        "list_dir",
        "stat",
        "remove",
        "mkdir",
        "rename",
    }
)
"""Coroutines: one answer."""
BACKEND_STREAMS = frozenset({"exec", "read_file", "watch", "attach", "ensure_template"})
"""Async iterators (``ensure_template``: its progress, then its answer): one frame per item."""
BACKEND_DUPLEX = frozenset({"exec", "attach", "write_file", "terminal"})
"""Calls that take input while they run (a command's stdin, a file's chunks, a terminal's keys):
served over a WebSocket."""
NETWORK_CALLS = frozenset(
    {
        "addresses",
        "gateway_addresses",
        "create_network",
        "delete_network",
        "join",
        "leave",
        "peers",
        "memberships",
        "client_of",
        "policy_of",
        "netns_of",
        "drain_blocked",
        "allow_resolved",
        "overlay_members",
        "set_overlay",
    }
)
"""``InstanceNetwork``'s methods (and ``NodeOverlay``'s): synchronous, run in a worker thread on the
node."""
NODE_CALLS = frozenset(
    {"hello", "offer", "usages", "fence", "set_ports", "new_wakes", "set_secrets", "drain_secret_uses"}
)
"""The node itself: what it serves (``hello``), what it offers placement now (``offer``: region,
classes, room measured when asked), its shells' resource usage in one call, and its registration
generation (``fence``), and the table of its shells' exposed ports its ingress proxy answers from
(``set_ports``, ``node.ingress``: its answer reports the proxy's traffic and the wakes it waits
on; ``new_wakes``, held open, says when a request starts waiting), and the secrets its egress
proxy swaps in, with their uses (``set_secrets``, ``drain_secret_uses``: ``node.egress``)."""
