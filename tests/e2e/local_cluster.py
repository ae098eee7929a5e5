"""A whole Shells cluster on this machine (``make cluster-up``, docs/cluster.md), and the same
cluster as the fixture of the cluster tests and benchmarks, so they run exactly what a user runs:

- a Kubernetes API (Debian's etcd and the cached kube-apiserver, ``tests/support/kube.py``), which
  holds the ``shells-control`` Lease of the singleton duties;
- PostgreSQL 15 in a throwaway directory (``tests/support/postgres.py``), the one record;
- three node agents (``shells node``), each in its own network namespace with its own address on one
  test bridge, so every call from the control plane crosses a link: ``eu-1`` and ``eu-2`` in region
  ``eu``, ``us-1`` in ``us``;
- two control-plane replicas (``shells serve --role control``) on loopback, over that record, that
  API and those nodes;
- a load balancer in front of them (HAProxy, ``tests/support/balancer.py``), whose URL is the
  cluster's ``SHELLS_BASE_URL``: it health-checks the replicas and takes a dead one out.

    python -m tests.e2e.local_cluster up      # start in the background, print the URLs and token
    python -m tests.e2e.local_cluster down    # stop everything, leave nothing behind
    python -m tests.e2e.local_cluster status

``up`` starts a supervisor process (``run``) that holds every part inside context managers and
tears them all down on SIGTERM (``down``); its state is ``cluster.json`` in ``SHELLS_CLUSTER_DIR``
(default ``/var/tmp/shells-cluster``). Needs root (network namespaces, crun), like the e2e suite.

The replicas share one secrets key (``SHELLS_SECRETS_KEY_FILE``), as a real deployment's must, and
the node agents' egress proxies trust upstream a test CA of the cluster's own, whose server
certificate (``fake_https_tls``) a test gives ``tests/support/fake_https.py``, the fake internet's
HTTPS server that shells' secrets go to."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from shells.sdk import CommandOutput, Shells, Unavailable
from tests.support import kube, postgres
from tests.support.balancer import Balancer, balancer
from tests.support.balancer import missing as balancer_missing
from tests.support.fake_https import NAMES as FAKE_HTTPS_NAMES
from tests.support.kube import ADMIN_TOKEN, KubeAPI, kube_api
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.test_ca import TlsFiles, issue

from .harness import ServerProcess, free_port, serving
from .node_link import SHELLS, Bridge, NodeMachine, bridge, cluster_secret, node_machine

NODES = {
    "eu-1": ("eu", "container,wasm"),
    "eu-2": ("eu", "container,wasm,microvm"),
    "us-1": ("us", "container"),
}
"""Each node agent's name, region and isolation classes (``SHELLS_CLASSES``). One node offers
microvm, in the region a create goes to by default: guests under TCG on a shared machine are too
slow to run on every node. A microvm or wasm create in ``us`` is refused with a typed error."""
MICROVM_NODE = "eu-2"
NETWORK_CIDR = "10.251.0.0/16"
"""One range for the shells of every node (private networks are carved from it); each node's
routes live in its own network namespace, so the range is never routed on this host."""
REPLICAS = 2
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(os.environ.get("SHELLS_CLUSTER_DIR", "/var/tmp/shells-cluster"))
READY_TIMEOUT_S = 900.0
TEST_LEASE_S = 3.0
"""The Lease period of the cluster the tests share (``make cluster-up`` keeps the default 15 s)."""


@dataclass
class LocalCluster:
    root: Path
    kube: KubeAPI
    postgres: PostgresServer
    bridge: Bridge
    nodes: dict[str, NodeMachine]
    replicas: list[ServerProcess]
    balancer: Balancer

    @property
    def base_url(self) -> str:
        """The load balancer's URL: what ``make cluster-up`` prints as ``SHELLS_BASE_URL``."""
        return self.balancer.url

    @property
    def token(self) -> str:
        return self.replicas[0].token

    def client(self, replica: int | None = 0) -> Shells:
        """A client of one replica, or of the load balancer (``replica=None``)."""
        return Shells(self.base_url if replica is None else self.replicas[replica].url, self.token)

    def runs_duties(self, replica: int) -> bool:
        """Whether the replica says it runs the singleton duties (its ``/metrics`` gauge)."""
        return singleton_duties(self.replicas[replica].url, self.token)

    def wait_for_holder(self, timeout_s: float = 30.0) -> int:
        """The replica that runs the singleton duties, once one does."""
        deadline = time.monotonic() + timeout_s
        while not (holders := [i for i in range(len(self.replicas)) if self.runs_duties(i)]):
            assert time.monotonic() < deadline, "no replica took the singleton duties"
            time.sleep(0.2)
        return holders[0]

    def kill_mid_exec(self, replica: int, shell_id: str) -> tuple[object, float]:
        """Stream a 4 s exec of ``shell_id`` through ``replica`` and SIGKILL that replica at the
        first output; returns how the stream ended (its last event, or the error it raised) and
        the monotonic time of the kill."""
        victim = self.replicas[replica]
        assert victim.proc is not None
        outcome: object = None
        killed = 0.0
        script = "for i in $(seq 1 20); do echo tick$i; sleep 0.2; done"
        try:
            with self.client(replica).get(shell_id).commands.stream(script) as events:
                for event in events:
                    if isinstance(event, CommandOutput) and not killed:
                        os.kill(victim.proc.pid, signal.SIGKILL)
                        killed = time.monotonic()
                    outcome = event
        except Unavailable as e:  # the typed error a client may retry on another replica
            outcome = e
        assert killed, "the exec gave no output"
        return outcome, killed

    def holds(self, node: str, shell_id: str) -> bool:
        """Whether the node's own disk holds the shell (its subvolume in the node's pool)."""
        return (self.nodes[node].data_dir / "storage" / "pool" / "shells" / shell_id).exists()

    def state(self) -> dict[str, object]:
        """What ``cluster.json`` holds: enough to use the cluster, and to clean up after it."""
        return {
            "supervisor": os.getpid(),
            "base_url": self.base_url,
            "replicas": [r.url for r in self.replicas],
            "balancer_log": str(self.balancer.root / "haproxy.log"),
            "token": self.token,
            "kube_url": self.kube.url,
            "database_url": self.replicas[0].record_url,
            "nodes": {
                n: {"url": m.url, "region": NODES[n][0], "classes": NODES[n][1], "netns": m.netns}
                for n, m in self.nodes.items()
            },
            "bridge": self.bridge.name,
            "pids": [p.pid for p in self.kube.procs]
            + [self.postgres.proc.pid]
            + [r.proc.pid for r in self.replicas if r.proc is not None]
            + [self.balancer.proc.pid],
            "dirs": [str(Path(self.kube.ca_file).parents[1]), str(self.postgres.data_dir.parent)],
        }


def singleton_duties(url: str, token: str) -> bool:
    """Whether the server at ``url`` says it runs the singleton duties (``shells_singleton_duties``
    on ``/metrics``: 1 on the holder of the ``shells-control`` Lease)."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("shells_singleton_duties ")]
    assert lines, "no shells_singleton_duties gauge"
    return float(lines[0].split()[1]) == 1.0


def replica_env(cluster_nodes: dict[str, NodeMachine], api: KubeAPI, database_url: str, root: Path,
                lease_s: float) -> dict[str, str]:  # fmt: skip
    token_file = root / "kube-token"
    token_file.write_text(ADMIN_TOKEN, encoding="utf-8")
    return {
        "SHELLS_NODES": ",".join(m.url for m in cluster_nodes.values()),
        "SHELLS_CLUSTER_SECRET_FILE": str(root / "cluster-secret"),
        "SHELLS_SECRETS_KEY_FILE": str(root / "secrets.key"),  # made by the first replica
        "SHELLS_DATABASE_URL": database_url,
        "SHELLS_KUBE_URL": api.url,
        "SHELLS_KUBE_TOKEN_FILE": str(token_file),
        "SHELLS_KUBE_CA_FILE": api.ca_file,
        "SHELLS_LEASE_DURATION_S": str(lease_s),
        "SHELLS_REGION": "eu",  # where a create that names no region goes
    }


def missing() -> str | None:
    """Why no local cluster can run here, or None."""
    if os.geteuid() != 0:
        return "a local cluster needs root (network namespaces, a bridge, crun)"
    return postgres.missing() or kube.missing() or balancer_missing()


def fake_https_tls(root: Path) -> TlsFiles:
    """The certificate, key and CA for ``tests/support/fake_https.py`` (``FakeHttps(net, tls=...)``)
    that the node agents of the cluster in ``root`` trust upstream (``SHELLS_EGRESS_CA_FILE``)."""
    where = root / "fake-https"
    return TlsFiles(ca=where / "ca.pem", cert=where / "server.crt", key=where / "server.key")


@contextlib.contextmanager
def local_cluster(root: Path, lease_s: float = 15.0) -> Iterator[LocalCluster]:
    """Every part started (nodes side by side), yielded ready; all of it stopped and purged after,
    failing if a node or replica left anything on the host."""
    root.mkdir(parents=True, exist_ok=True)
    secret = cluster_secret(root)
    upstream = fake_https_tls(root)
    upstream.ca.parent.mkdir(mode=0o700, exist_ok=True)
    issue(upstream.ca.parent, FAKE_HTTPS_NAMES, "local cluster fake internet CA")
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(kube_api())
        pg = stack.enter_context(postgres_server())
        link = stack.enter_context(bridge())
        machines = {
            name: stack.enter_context(node_machine(root / name, secret, on=link, host=11 + i))
            for i, name in enumerate(NODES)
        }
        for name, machine in machines.items():
            region, classes = NODES[name]
            env = {
                "SHELLS_REGION": region,
                "SHELLS_CLASSES": classes,
                "SHELLS_NETWORK_CIDR": NETWORK_CIDR,
                "SHELLS_EGRESS_CA_FILE": str(upstream.ca),  # how its egress proxy trusts fake_https
                "SHELLS_INGRESS_HOST": machine.address,  # exposed ports reachable across the bridge
            }
            machine.launch(name, env)
        for machine in machines.values():
            machine.wait_serving()
        env = replica_env(machines, api, pg.new_database("cluster"), root, lease_s)
        replicas: list[ServerProcess] = []
        for i in range(REPLICAS):  # one after the other: the first migrates the record
            replica = ServerProcess(root / f"control-{i + 1}", warm_pool=0, env=env)
            replicas.append(stack.enter_context(serving(replica, f"cluster-control-{i + 1}")))
        backends = {r.data_dir.name: f"127.0.0.1:{r.port}" for r in replicas}
        front = stack.enter_context(balancer(root / "balancer", free_port(), backends))
        yield LocalCluster(root, api, pg, link, machines, replicas, front)


@contextlib.contextmanager
def local_cluster_or_skip(root: Path, lease_s: float) -> Iterator[LocalCluster]:
    """``local_cluster`` for a test fixture: skipped, with the reason, where none can run."""
    import pytest

    why = missing()
    if why is not None:
        pytest.skip(why)
    with local_cluster(root, lease_s) as running:
        yield running


# the commands -------------------------------------------------------------------------------------
def _state_file(root: Path) -> Path:
    return root / "cluster.json"


def _read_state(root: Path) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads(_state_file(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _print_usage(state: dict[str, object], root: Path) -> None:
    replicas = state["replicas"]
    assert isinstance(replicas, list)
    nodes = state["nodes"]
    assert isinstance(nodes, dict)
    print(f"Shells cluster is running (state and logs: {root})")
    print(f"  load balancer: {state['base_url']} (HAProxy; its log: {state.get('balancer_log', '?')})")
    for i, url in enumerate(replicas, 1):
        print(f"  control replica {i}: {url}")
    for name, node in nodes.items():
        where = f"region {node['region']}: {node.get('classes', '')}"
        print(f"  node {name} ({where}): {node['url']} in netns {node['netns']}")
    print(f"  Kubernetes API: {state['kube_url']}   record: {state['database_url']}")
    print(f"""
  export SHELLS_BASE_URL={state["base_url"]} SHELLS_API_TOKEN={state["token"]}
  shells create --language python --region us
  shells create --language python --runtime microvm   # on {MICROVM_NODE}, region {NODES[MICROVM_NODE][0]}
""")


def cmd_run(root: Path, lease_s: float) -> int:
    """The supervisor: hold the cluster until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with local_cluster(root, lease_s) as cluster:
        _state_file(root).write_text(json.dumps(cluster.state(), indent=2), encoding="utf-8")
        try:
            while not stop.wait(1.0):
                pass
        finally:
            _state_file(root).unlink(missing_ok=True)
    return 0


def cmd_up(root: Path, lease_s: float) -> int:
    state = _read_state(root)
    if state is not None and _alive(state.get("supervisor")):
        _print_usage(state, root)
        return 0
    if (why := missing()) is not None:
        print(f"cannot start a local cluster: {why}", file=sys.stderr)
        return 1
    _cleanup_after(root)  # a supervisor killed before: its leftovers go first
    root.mkdir(parents=True, exist_ok=True)
    print("Starting the Kubernetes API, PostgreSQL, 3 node agents, 2 control replicas, a load balancer...")
    with (root / "cluster.log").open("ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.local_cluster", "run",
             "--dir", str(root), "--lease-s", str(lease_s)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )  # fmt: skip
    (root / "supervisor.pid").write_text(str(supervisor.pid), encoding="utf-8")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (state := _read_state(root)) is None:
        if supervisor.poll() is not None or time.monotonic() > deadline:
            tail = (root / "cluster.log").read_bytes()[-3000:].decode(errors="replace")
            print(f"the cluster did not start; see {root / 'cluster.log'}:\n{tail}", file=sys.stderr)
            if supervisor.poll() is None:
                cmd_down(root)
            return 1
        time.sleep(0.5)
    _print_usage(state, root)
    return 0


def cmd_down(root: Path) -> int:
    try:
        pid = int((root / "supervisor.pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pid = 0
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 300
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        print(f"stopped the cluster (supervisor {pid})")
    elif _read_state(root) is not None:
        print("the cluster's supervisor was gone; removing what it left")
    else:
        print("no local cluster is running")
    _cleanup_after(root)
    return 0


def _cleanup_after(root: Path) -> None:
    """What a supervisor that was killed (not stopped) left, from its state file: its processes,
    each node's shells and host objects (purged inside the node's namespace), the namespaces, the
    bridge and the directories. After a clean stop there is no state file: only the directory goes."""
    state = _read_state(root)
    if state is not None:
        for pid in _strings(state.get("pids")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        nodes = state.get("nodes")
        for name, node in nodes.items() if isinstance(nodes, dict) else []:
            inside = ["nsenter", f"--net=/run/netns/{node['netns']}", "--"]
            pids = ["ip", "netns", "pids", node["netns"]]
            agents = subprocess.run(pids, capture_output=True, text=True, check=False)
            for pid in agents.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            purge = [*SHELLS, "purge", "--data-dir", str(root / name / "node"), "--yes"]
            subprocess.run([*inside, *purge], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", node["netns"]], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", str(state.get("bridge"))], capture_output=True, check=False)
        for replica in sorted(root.glob("control-*")):
            purge = [*SHELLS, "purge", "--data-dir", str(replica), "--yes"]
            subprocess.run(purge, capture_output=True, check=False)
        for other in _strings(state.get("dirs")):
            subprocess.run(["rm", "-rf", "--one-file-system", other], check=False)
    if root.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.e2e.local_cluster")
    ap.add_argument("command", choices=["up", "down", "status", "run"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--lease-s", type=float, default=15.0)
    args = ap.parse_args(argv)
    if args.command == "up":
        return cmd_up(args.dir, args.lease_s)
    if args.command == "down":
        return cmd_down(args.dir)
    if args.command == "run":
        return cmd_run(args.dir, args.lease_s)
    state = _read_state(args.dir)
    if state is None or not _alive(state.get("supervisor")):
        print("no local cluster is running")
        return 1
    _print_usage(state, args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
