"""``shells serve | prepare | purge``: the commands that run server code on this host, not the SDK."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import Subparsers


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..server import serve
    from ..settings import Settings

    nodes = tuple(u.strip() for u in args.node.split(",") if u.strip()) if args.node else None
    settings = Settings.from_env(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        warm_pool_size=args.warm_pool,
        e2b_port=args.e2b_port,
        e2b_domain=args.e2b_domain,
        nodes=nodes,
        cluster_secret_file=args.cluster_secret_file,
        discover_nodes=True if args.role == "control" else None,
    )
    if settings.discover_nodes and not settings.kube_url:
        settings = replace(settings, discover_nodes=False)
    if args.role == "control" and not settings.nodes and not settings.discover_nodes:
        raise SystemExit(
            "shells: --role control needs --node URL[,URL...] (SHELLS_NODES) or SHELLS_KUBE_URL to find "
            "the node agents by their Leases"
        )
    if settings.nodes and settings.cluster_secret_file is None:
        raise SystemExit("shells: --role control needs --cluster-secret-file (SHELLS_CLUSTER_SECRET_FILE)")
    serve(settings)
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    """Serve this machine's backends and network to a control plane (docs/cluster.md)."""
    from ..node.serve import serve_node
    from ..node.wire import load_secret
    from ..settings import Settings

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"shells: --listen must be HOST:PORT, not {args.listen!r}")
    settings = Settings.from_env(data_dir=args.data_dir, node_name=args.name, warm_pool_size=0)
    secret_file = args.secret_file or settings.cluster_secret_file
    if secret_file is None:
        raise SystemExit("shells: node needs --secret-file (SHELLS_CLUSTER_SECRET_FILE)")
    serve_node(settings, host.strip("[]"), int(port), load_secret(secret_file))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Build and import the base template without serving (``make up`` runs this first)."""
    import anyio

    from ..runtime.container.backend import ContainerBackend
    from ..settings import Settings

    backend = ContainerBackend(Settings.from_env(data_dir=args.data_dir))
    anyio.run(backend.prepare)
    print("templates ready:", ", ".join(backend.templates()))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Destroy every shell and host object of one instance (its records stay in the database)."""
    import anyio

    from ..runtime.container.backend import ContainerBackend
    from ..runtime.microvm.backend import MicrovmBackend
    from ..runtime.wasm.backend import WasmBackend
    from ..settings import Settings

    if not args.yes:
        raise SystemExit("shells: purge destroys every shell of the instance; add --yes to confirm")
    container = ContainerBackend(Settings.from_env(data_dir=args.data_dir))

    async def purge() -> None:
        await MicrovmBackend(container.settings, container).purge()
        if container.pool.mount_dir.exists():
            container.pool.ensure_mounted()
            await WasmBackend(container.settings, container.pool).purge()
        await container.purge()

    anyio.run(purge)
    print("purged")
    return 0


def register(sub: Subparsers) -> None:
    s = sub.add_parser("serve", help="run a Shells server")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--warm-pool", type=int, default=None, help="pre-started shells kept ready (default 2)")
    s.add_argument("--e2b-port", type=int, default=None, help="serve the E2B door on this port (docs/e2b.md)")
    s.add_argument(
        "--e2b-domain",
        default=None,
        help="E2B door domain mode (TLS): api.D, {port}-{id}.D; needs SHELLS_E2B_TLS_CERT_FILE, _KEY_FILE",
    )
    s.add_argument(
        "--role",
        choices=["all", "control"],
        default="all",
        help="all: control plane and node in one process (the default unless nodes are given); "
        "control: drive the --node agents",
    )
    s.add_argument("--node", default=None, help="node agent URLs, comma-separated (with --role control)")
    s.add_argument("--cluster-secret-file", type=Path, default=None, help="the cluster's shared secret")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("node", help="serve this machine's shells to a control plane (docs/cluster.md)")
    s.add_argument("--listen", required=True, help="HOST:PORT the control plane calls")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--secret-file", type=Path, default=None, help="the cluster's shared secret")
    s.add_argument("--name", default=None, help="this node's name in the record (SHELLS_NODE_NAME)")
    s.set_defaults(func=cmd_node)

    s = sub.add_parser("prepare", help="prepare the host and build the base template, then exit")
    s.add_argument("--data-dir", type=Path, default=None)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("purge", help="destroy every shell and host object of an instance (server stopped)")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--yes", action="store_true")
    s.set_defaults(func=cmd_purge)
