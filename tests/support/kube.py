"""A real Kubernetes API for tests: Debian's etcd and a kube-apiserver built from Debian's source
(`scripts/build-kube-apiserver.sh`, cached per machine), on loopback ports of their own, with a
test CA, token authentication and RBAC, gone when the context ends."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shells.cluster.kube import KubeConfig

from .processes import end

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SHELLS_CACHE_DIR", Path.home() / ".cache" / "shells"))
APISERVER = CACHE / "kubernetes-1.20.2" / "bin" / "kube-apiserver"
ADMIN_TOKEN = "shells-test-admin-token"
START_TIMEOUT_S = 90.0


def missing() -> str | None:
    """Why no Kubernetes API can run here, or None (building the binary if it is not cached yet)."""
    if shutil.which("etcd") is None:
        return "etcd is not installed (Debian package etcd-server)"
    if not APISERVER.exists():
        build = subprocess.run([str(REPO / "scripts" / "build-kube-apiserver.sh")], check=False)
        if build.returncode != 0:
            return "kube-apiserver could not be built from Debian's source (see the output above)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(pki: Path) -> None:
    """A CA, the API server's certificate for 127.0.0.1 signed by it, service-account keys, tokens."""
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=shells-test-ca",
             "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
             "-keyout", str(pki / "server.key"), "-out", str(pki / "server.csr"))  # fmt: skip
    (pki / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", str(pki / "server.csr"), "-CA", str(pki / "ca.crt"),
             "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "2",
             "-extfile", str(pki / "ext.cnf"), "-out", str(pki / "server.crt"))  # fmt: skip
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    (pki / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,1,system:masters\n", encoding="utf-8")


@dataclass
class KubeAPI:
    url: str
    ca_file: str
    procs: list[subprocess.Popen[bytes]]

    def config(self, token: str = ADMIN_TOKEN, namespace: str = "default") -> KubeConfig:
        return KubeConfig(url=self.url, token=token, ca_file=self.ca_file, namespace=namespace)

    def kubeconfig(self, path: Path, token: str = ADMIN_TOKEN) -> Path:
        """A kubeconfig file for kubectl against this API server."""
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {self.url}\n"
            f"    certificate-authority: {self.ca_file}\n"
            f"users:\n- name: admin\n  user:\n    token: {token}\n"
            "contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\n",
            encoding="utf-8",
        )
        return path


def _ready(url: str, ca_file: str) -> bool:
    request = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(
            request, timeout=2, context=ssl.create_default_context(cafile=ca_file)
        ) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def kube_api() -> Iterator[KubeAPI]:
    """etcd + kube-apiserver on free loopback ports in a throwaway directory."""
    top = Path(tempfile.mkdtemp(prefix="shells-kube-", dir="/var/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pki = top / "pki"
        _make_pki(pki)
        client, peer, metrics, secure = _free_port(), _free_port(), _free_port(), _free_port()
        log = (top / "etcd.log").open("ab")
        procs.append(subprocess.Popen(
            ["etcd", "--name", "test", "--data-dir", str(top / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"test=http://127.0.0.1:{peer}",
             "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
             "--unsafe-no-fsync"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        log.close()
        log = (top / "apiserver.log").open("ab")
        procs.append(subprocess.Popen(
            [str(APISERVER), f"--etcd-servers=http://127.0.0.1:{client}", "--bind-address=127.0.0.1",
             "--advertise-address=127.0.0.1", f"--secure-port={secure}", "--insecure-port=0",
             f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
             f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
             "--authorization-mode=RBAC", f"--service-account-key-file={pki / 'sa.pub'}",
             f"--service-account-signing-key-file={pki / 'sa.key'}",
             "--service-account-issuer=https://kubernetes.default.svc",
             "--service-cluster-ip-range=10.96.0.0/16",
             "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount", "--allow-privileged=true"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        log.close()
        api = KubeAPI(f"https://127.0.0.1:{secure}", str(pki / "ca.crt"), procs)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(api.url, api.ca_file):
            if any(proc.poll() is not None for proc in procs):
                logs = (top / "etcd.log").read_text()[-1500:] + (top / "apiserver.log").read_text()[-3000:]
                raise RuntimeError(f"etcd or kube-apiserver exited: {logs}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Kubernetes API did not become ready in time")
            time.sleep(0.2)
        yield api
    finally:
        for proc in reversed(procs):
            end(proc, 15)
        shutil.rmtree(top, ignore_errors=True)
