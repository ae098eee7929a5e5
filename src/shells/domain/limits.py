"""The limits that protect the server from its callers and from the shells, in one place.

Each is enforced on the host, never by the agent inside a shell (which the tenant may have
replaced): docs/security.md ("Limits and where they are enforced") lists where.
"""

from __future__ import annotations

EXEC_OUTPUT_CAP_BYTES = 64 * 1024 * 1024
"""Output (stdout + stderr) of one command the host forwards; past it output is dropped and the
exit says ``truncated``. ``runtime.agent_client`` counts it, whatever the agent claims."""
WAIT_OUTPUT_CAP_BYTES = 8 * 1024 * 1024
"""Output kept in memory for an answer given whole (``?wait=true``, the MCP exec tools): the first
bytes up to the cap, then ``truncated``. Streams are not held, so they get EXEC_OUTPUT_CAP_BYTES."""
MAX_AGENT_CHANNELS = 128
"""Calls open at once to one shell's agent (commands, file transfers, terminals); more answer 409
``shell_busy``. Below the agent's own 256, so an honest agent never refuses first."""
MAX_LIST_ENTRIES = 20_000
"""Entries of one directory listing (the agent refuses more; the host checks its answer)."""
MAX_FILE_READ_BYTES = 512 * 1024 * 1024
"""Largest file the files API reads out of a shell; it is streamed, never held whole."""
MAX_JSON_BODY_BYTES = 1024 * 1024
"""Largest JSON request body."""
BODY_IDLE_TIMEOUT_S = 30.0
"""Longest wait for the next piece of a request body (a body shorter than its Content-Length)."""
MAX_API_INT = 2**63 - 1
"""Largest integer any query or body parameter may carry (what the store can hold)."""
MAX_USD = 10**12
"""Largest amount of dollars a body may carry (a budget, a free tier): the store keeps amounts in
millionths of a dollar in a 64-bit integer, which a larger amount would overflow."""
RESTART_WAIT_S = 120.0
"""How long a request to a shell whose restart runs waits for it before answering 409."""
