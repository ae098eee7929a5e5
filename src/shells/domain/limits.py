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
IDLE_AGENT_CONNECTIONS = 256
"""Connections to containers' agents kept open between calls, over all shells (``agent_client``);
the least recently used beyond it are closed (each holds a descriptor on the host and one in its
agent)."""
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

MAX_SECRET_VALUE_BYTES = 16 * 1024
"""Largest secret value a tenant may store (a token, a key; not a file)."""
MAX_SECRETS_PER_TENANT = 256
"""Secrets one tenant may hold."""
MAX_SECRET_HOSTS = 32
"""Host patterns of one secret."""
MAX_SHELL_SECRETS = 32
"""Secrets one shell may be created with."""
EGRESS_MAX_CLIENT_HELLO_BYTES = 16 * 1024 + 5
"""The TLS record the egress proxy reads to find a shell's SNI: one record, at most 16 KiB of
payload (RFC 8446's own bound) plus its header. A hello split over more records is passed through."""
EGRESS_MAX_HEAD_BYTES = 64 * 1024
"""A request head (request line plus headers) the egress proxy holds to substitute placeholders;
a longer one is refused with 431 and the connection closed."""
EGRESS_MAX_CONNECTIONS_PER_SHELL = 64
"""HTTPS connections one shell may hold open through the egress proxy at once; more are reset."""
EGRESS_HANDSHAKE_TIMEOUT_S = 15.0
"""How long the egress proxy waits for a shell's TLS hello, its handshake or its request head."""
E2B_MAX_METADATA = 64
"""Entries of an E2B sandbox's ``metadata`` or ``envVars`` (the metadata become the shell's labels)."""
E2B_MAX_PAGE = 100
"""Sandboxes in one page of the E2B door's list."""
MAX_PROCESSES = 64
"""Processes (commands that outlive their request) one shell keeps running at once."""
MAX_SUBSCRIBER_CHUNKS = 256
"""Output chunks queued for one listener of a command before the command waits for it."""
E2B_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
"""Bytes of one ``POST /files`` on the E2B door (all its parts)."""
E2B_MAX_INFLATED_BYTES = 512 * 1024 * 1024
"""Bytes a gzip-encoded ``POST /files`` on the E2B door may inflate to (all its parts): past it the
upload is refused (413) and nothing is written, so a small gzip bomb cannot fill a disk."""
E2B_MAX_SIGNING_SANDBOXES = 10_000
"""Sandboxes whose access tokens the E2B door remembers to match signed file URLs against."""
E2B_MAX_SIGNING_TOKENS_PER_SANDBOX = 16
"""Access tokens (one per key that created or connected to it) remembered for one sandbox."""
E2B_MAX_WATCHERS = 32
"""Polling directory watchers one sandbox may hold on the E2B door."""
E2B_MAX_WATCHER_EVENTS = 10_000
"""Changes a polling watcher keeps between two polls (the oldest are dropped past it)."""
E2B_PORT_CONNECT_TIMEOUT_S = 10.0
"""How long the E2B door waits for Shells' ingress to take a forwarded user-port request."""
OCI_MANIFEST_MAX_BYTES = 4 * 1024 * 1024
"""Largest manifest, image index or image config the registry client reads (``runtime.oci``)."""
OCI_MAX_LAYERS = 127
"""Most layers one imported image may have (Docker's own limit is 127)."""
OCI_IMAGE_MAX_BYTES = 16 * 1024**3
"""Largest sum of an imported image's layers, compressed, as its manifest declares them; a
registry that sends more bytes than declared is cut off (``runtime.oci.registry``)."""
OCI_UNPACKED_MAX_BYTES = 32 * 1024**3
"""Largest sum of file sizes the layers of one image may unpack to (``runtime.oci.layers``)."""
OCI_MAX_ENTRIES = 2_000_000
"""Most tar entries across an image's layers."""
DOCKERFILE_MAX_BYTES = 256 * 1024
"""Largest Dockerfile a build accepts."""
BUILD_CONTEXT_MAX_BYTES = 512 * 1024 * 1024
"""Largest build context (the tar a Dockerfile build uploads)."""
MAX_WEBHOOKS_PER_TENANT = 20
"""Webhooks one tenant may register."""
MAX_WEBHOOK_URL = 2048
"""Longest webhook URL."""
WEBHOOK_SECRET_CHARS = (16, 256)
"""Shortest and longest signing secret a caller may choose."""
MAX_DELIVERY_LOG = 500
"""Finished deliveries kept per webhook (pending ones are all kept until they succeed or give up)."""
WEBHOOK_RESOLVE_TIMEOUT_S = 5.0
"""Longest wait for a webhook's host name to resolve."""
WEBHOOK_CONNECT_TIMEOUT_S = 5.0
WEBHOOK_TIMEOUT_S = 10.0
"""Longest wait for each read of a receiver's answer; a slower receiver's attempt fails and is retried."""
WEBHOOK_CONCURRENCY = 8
"""Deliveries in flight at once (per server); a slow receiver holds at most these."""
MAX_SAMPLES_PER_SHELL = 8640
"""Samples kept per shell, newest last: 12 h at the default 5 s (``SHELLS_METRICS_SAMPLE_S``; ~150
bytes each in memory);
older ones drop off the ring. The ring lives as long as the shell, across restarts (at most
8640 * 32 bytes on disk per shell, ``data_dir/metrics``)."""
WARM_POOL_MAX = 64
"""Most pre-started shells the warm pool keeps per template, however high the demand (each holds
its idle memory, see WARM_POOL_MEMORY_SHARE)."""
WARM_POOL_MEMORY_SHARE = 0.1
"""Share of the host's available memory the warm pool may hold, at ``IDLE_SHELL_BYTES`` a shell."""
IDLE_SHELL_BYTES = 16 * 1024 * 1024
"""What one idle container shell is counted to hold for the pool's bound (measured: under 10 MB
PSS, agent included, ``benchmarks/bench_density.py``)."""
DURABLE_UPLOADS = 2
"""Snapshots packed and uploaded to the object store at once (per server): each packs with zstd
on every core, so more would only slow requests."""
DURABLE_RETRY_FIRST_S = 1.0
DURABLE_RETRY_MAX_S = 300.0
"""Waits between tries of an upload that failed (the store unreachable, a disk error): the first,
then doubling up to the last, until it succeeds or the snapshot is deleted."""
SYNC_MAX_FILES = 100_000
"""Most files of one /workspace that sync tracks (the host keeps a size and time per file: a few MB
at most); a pass over a larger tree fails with the reason until files are removed."""
SYNC_CHECK_TIMEOUT_S = 5.0
"""Longest wait for a sync bucket's answer when a shell is created (a dead endpoint is a 400
within this)."""
SYNC_RETRY_MAX_S = 60.0
"""Longest wait before the next pass after failed ones (the first is ``Settings.sync_first_retry_s``,
each next doubles)."""
SYNC_AGENT_FILE_MAX_BYTES = 512 * 1024 * 1024
"""Largest file sync copies out of a shell through its agent (a microvm's /workspace): a file that
claims more is skipped, one whose data runs past it fails the pass. One such file at a time per
pass is spooled on the host's disk."""
SYNC_KEY_MAX_BYTES = 1024
"""Longest object key S3 accepts: a /workspace path that would make a longer one is skipped."""

# Bucket mounts and volumes (docs/storage.md) ------------------------------------------------------
MAX_SHELL_MOUNTS = 8
"""Bucket mounts plus volumes on one shell (each is a host process or a host mount)."""
MOUNT_CACHE_BYTES = 1024**3
"""What one bucket mount's FUSE process may keep on the host's disk (its write cache and its log):
a btrfs quota on the subvolume it writes into, so a larger write fails with ENOSPC inside."""
MOUNT_CHECK_TIMEOUT_S = 5.0
"""How long create waits for a bucket's endpoint before answering bucket_unreachable."""
MOUNT_READY_TIMEOUT_S = 15.0
"""How long the FUSE process may take to mount before the create fails."""
MOUNT_FLUSH_TIMEOUT_S = 30.0
"""How long a stop waits for a bucket mount's writes to reach the bucket before it unmounts; what is
left stays in the mount's cache on the host and is uploaded at the shell's next start."""
MAX_VOLUMES_PER_TENANT = 64
MAX_VOLUME_GIB = 1024

NODE_RPC_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest request body or single frame a node agent or the control plane accepts from the other
(a frame is one value: a stdin, an output chunk, a file chunk; never a whole file)."""
NODE_RPC_WINDOW_S = 30.0
"""How far a signed node request's timestamp may be from the receiver's clock; a nonce is
remembered for twice that, so a captured request can never be accepted again."""
NODE_RPC_MAX_NONCES = 200_000
"""Nonces a node agent remembers inside the window; past that it refuses requests (503) rather
than forget one still inside the window."""
NODE_MAX_EXPOSED_PORTS = 100_000
"""Exposed ports a node agent takes in one table from the control plane (``node.ingress``)."""
NODE_MAX_SECRETS = 100_000
"""Brokered secrets (per shell) a node agent takes in one table from the control plane (``node.egress``)."""
NODE_MAX_SECRET_USES = 100_000
"""Secret uses a node agent keeps until the control plane collects them for the audit trail."""

MAX_BUCKET_CREDENTIALS_PER_TENANT = 64
"""Named bucket credentials a tenant may store (POST /v1/bucket-credentials; docs/storage.md)."""
VOLUME_SWEEP_S = 5.0
"""How often a machine looks for volumes it holds that a writer let go of and are not yet uploaded
to the object store (their writer's stop or delete uploads them at once; this catches the rest)."""
