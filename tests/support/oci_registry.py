"""A real OCI registry for tests: Debian's ``docker-registry`` (the CNCF distribution registry) on
loopback, with TLS from a test CA and htpasswd basic auth, in a temporary directory.

The test images are pushed with Shells' own registry client once per content and the registry's
storage is cached under ``~/.cache/shells/oci-registry/<key>``; each fixture starts from a hard-linked
copy of it (the registry never rewrites a blob in place), so tests may push more.

Images (``IMAGES``):
- ``busybox:1``: a static busybox and its applets, ``/etc/passwd`` with ``app`` (1000); Env, WorkingDir
  and User set. No libc, no Python.
- ``musl:1``: busybox plus Debian's musl as ``/lib/ld-musl-x86_64.so.1`` and a program linked against it
  (``/usr/bin/hello-musl``), like an Alpine image. No glibc, no Python.
- ``debian:1``: the Debian base rootfs as a zstd layer, then a layer with files, a hard link, a
  symlink, an xattr and owners, then a layer whose whiteout hides one of them and whose opaque
  directory replaces another's contents.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shells.domain.oci import OCI_LAYER_GZIP, OCI_LAYER_ZSTD, ImageRef
from shells.runtime.images import RootfsSpec
from shells.runtime.oci.push import PackedLayer, config_document, push_image
from shells.runtime.oci.registry import Credentials, RegistryClient, tls_context

USER = "shells"
PASSWORD = "registry-pass-1"
CACHE_FORMAT = 3
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shells" / "oci-registry"
BUSYBOX = Path("/bin/busybox")
MUSL = Path("/usr/lib/x86_64-linux-musl/libc.so")


@dataclass
class Registry:
    """A running registry: its host:port, the CA file that trusts it, and the credentials it takes."""

    host: str
    ca_file: Path
    dir: Path
    credentials: Credentials = field(default_factory=lambda: Credentials(USER, PASSWORD))

    def ref(self, repo: str) -> str:
        return f"{self.host}/{repo}"

    def client(self, repo: str, *, push: bool = False) -> RegistryClient:
        ref = ImageRef(self.host, repo.partition(":")[0], repo.partition(":")[2] or "latest")
        return RegistryClient(ref, self.credentials, tls_context((self.ca_file,)), push=push)


# layers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One tar entry of a test layer."""

    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    link: str = ""
    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()


def dir_entry(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(name, mode=mode, kind=tarfile.DIRTYPE, uid=uid, gid=gid)


def tar_bytes(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.uid, info.gid = e.kind, e.mode, e.uid, e.gid
            info.mtime = 1_700_000_000
            info.linkname = e.link
            info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs}
            tar.addfile(info, io.BytesIO(e.data) if info.size else None)
    return out.getvalue()


def gzip_layer(directory: Path, entries: list[Entry]) -> tuple[PackedLayer, str]:
    """A gzip layer of ``entries`` written under ``directory``, and its diff id."""
    raw = tar_bytes(entries)
    blob = gzip.compress(raw, mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    path = directory / digest.removeprefix("sha256:")
    path.write_bytes(blob)
    return PackedLayer(path, digest, len(blob), OCI_LAYER_GZIP), "sha256:" + hashlib.sha256(raw).hexdigest()


def debian_base_layer(directory: Path) -> tuple[PackedLayer, str]:
    """The Debian base rootfs as a zstd layer, without the device nodes debootstrap leaves in /dev
    (images on registries have none; a layer with one is refused), and its diff id."""
    out, raw = directory / "debian-base.tar.zst", directory / "debian-base.tar"
    script = f"zstd -dcq {base_tarball()} | tar --delete --wildcards './dev/?*' > {raw}"
    subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True)
    diff = "sha256:" + _sha256_file(raw)
    subprocess.run(["zstd", "-q", "-T0", "-3", "--rm", "-o", str(out), str(raw)], check=True)
    return PackedLayer(out, "sha256:" + _sha256_file(out), out.stat().st_size, OCI_LAYER_ZSTD), diff


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\n"


def busybox_entries() -> list[Entry]:
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    entries = [
        dir_entry("bin"),
        dir_entry("etc"),
        dir_entry("home"),
        dir_entry("home/app", 0o755, 1000, 1000),
    ]
    entries.append(Entry("bin/busybox", BUSYBOX.read_bytes(), 0o755))
    entries += [Entry(f"bin/{a}", kind=tarfile.SYMTYPE, link="busybox") for a in applets if a != "busybox"]
    entries += [Entry("etc/passwd", PASSWD.encode()), Entry("etc/group", GROUP.encode())]
    return entries


HELLO_C = '#include <stdio.h>\nint main(void){puts("hello from musl");return 0;}\n'


def musl_entries(work: Path) -> list[Entry]:
    src = work / "hello.c"
    src.write_text(HELLO_C)
    subprocess.run(["musl-gcc", "-O2", "-o", str(work / "hello"), str(src)], check=True)
    return [
        dir_entry("lib"),
        Entry("lib/ld-musl-x86_64.so.1", MUSL.read_bytes(), 0o755),
        Entry("lib/libc.musl-x86_64.so.1", kind=tarfile.SYMTYPE, link="ld-musl-x86_64.so.1"),
        dir_entry("usr"),
        dir_entry("usr/bin"),
        Entry("usr/bin/hello-musl", (work / "hello").read_bytes(), 0o755),
        dir_entry("etc/apk"),
        Entry("etc/os-release", b'ID=alpine-like\nNAME="musl test image"\n'),
    ]


def debian_upper_entries() -> tuple[list[Entry], list[Entry]]:
    second = [
        dir_entry("opt"),
        dir_entry("opt/data"),
        Entry("opt/data/keep.txt", b"kept\n"),
        Entry("opt/data/gone.txt", b"hidden by the next layer\n"),
        Entry("opt/data/owned.txt", b"owned by app\n", 0o640, uid=1000, gid=1000),
        Entry("opt/data/setuid", b"#!/bin/sh\n", 0o4755),
        Entry("opt/data/hard.txt", kind=tarfile.LNKTYPE, link="opt/data/keep.txt"),
        Entry("opt/data/link", kind=tarfile.SYMTYPE, link="keep.txt"),
        Entry("opt/data/xattr.txt", b"x\n", xattrs=(("user.shells", "yes"),)),
        dir_entry("opt/opaque"),
        Entry("opt/opaque/old.txt", b"old\n"),
    ]
    third = [
        Entry("opt/data/.wh.gone.txt"),
        Entry("opt/opaque/.wh..wh..opq"),
        Entry("opt/opaque/new.txt", b"new\n"),
    ]
    return second, third


def base_tarball() -> Path:
    """The host's cached Debian base rootfs (what ``base:1`` is made from)."""
    tarball = CACHE.parent / RootfsSpec().tarball_name()
    if not tarball.exists():
        raise RuntimeError(f"no cached Debian base tarball {tarball} (run `shells prepare` once)")
    return tarball


def cache_key() -> str:
    parts = [str(CACHE_FORMAT), _sha256_file(BUSYBOX), _sha256_file(MUSL), base_tarball().name, HELLO_C]
    parts.append(Path(__file__).read_text())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


RUN_CONFIG = {
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello from the image"],
    "WorkingDir": "/home/app",
    "User": "app",
    "Cmd": ["/bin/sh"],
    "Labels": {"org.opencontainers.image.title": "busybox test"},
}


async def push_test_images(reg: Registry) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        work = Path(tmp)
        bb, bb_diff = gzip_layer(work, busybox_entries())
        cfg = config_document(RUN_CONFIG, [bb_diff], "amd64", "busybox test image")
        async with reg.client("busybox", push=True) as c:
            await push_image(c, "1", [bb], cfg)
        musl, musl_diff = gzip_layer(work, musl_entries(work))
        cfg = config_document({**RUN_CONFIG, "User": ""}, [bb_diff, musl_diff], "amd64", "musl test image")
        async with reg.client("musl", push=True) as c:
            await push_image(c, "1", [bb, musl], cfg)
        base, base_diff = debian_base_layer(work)
        second, third = debian_upper_entries()
        l2, d2 = gzip_layer(work, second)
        l3, d3 = gzip_layer(work, third)
        cfg = config_document(
            {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]},
            [base_diff, d2, d3],
            "amd64",
            "debian test image",
        )
        async with reg.client("debian", push=True) as c:
            await push_image(c, "1", [base, l2, l3], cfg)


# the process ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_tls(d: Path) -> None:
    def run(*argv: str) -> None:
        subprocess.run(argv, cwd=d, check=True, capture_output=True)

    new_key = ("openssl", "req", "-newkey", "rsa:2048", "-nodes")
    run(*new_key, "-x509", "-days", "2", "-subj", "/CN=shells test CA", "-keyout", "ca.key", "-out", "ca.crt")
    run(*new_key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip


@contextmanager
def _serve(d: Path, storage: Path) -> Iterator[Registry]:
    port = _free_port()
    (d / "htpasswd").write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
        ).stdout
    )
    (d / "config.yml").write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
                "http": {
                    "addr": f"127.0.0.1:{port}",
                    "tls": {"certificate": str(d / "server.crt"), "key": str(d / "server.key")},
                },
                "auth": {"htpasswd": {"realm": "shells-test", "path": str(d / "htpasswd")}},
            }
        )
    )
    log = (d / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/v2/", verify=tls_context((d / "ca.crt",)), timeout=1)
                if r.status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry did not start: {(d / 'registry.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", d / "ca.crt", d)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def cached_storage() -> Path:
    """The registry storage holding the test images, built once per content."""
    final = CACHE / cache_key()
    if final.exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".build-"))
    try:
        _make_tls(work)
        with _serve(work, work / "storage") as reg, ThreadPoolExecutor(1) as own_thread:
            # its own thread and loop: the caller may run inside a loop (Playwright's sync API has one)
            own_thread.submit(asyncio.run, push_test_images(reg)).result()
        (work / "storage").rename(work / "done")
        try:
            (work / "done").rename(final)
        except OSError:  # another test run built the same content meanwhile: theirs is as good
            if not final.exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


@contextmanager
def local_registry() -> Iterator[Registry]:
    """A running registry holding the test images, in a temporary directory removed afterwards."""
    storage = cached_storage()
    d = Path(tempfile.mkdtemp(prefix="shells-registry-", dir="/var/tmp"))
    try:
        subprocess.run(["cp", "-al", str(storage), str(d / "storage")], check=True)
        _make_tls(d)
        with _serve(d, d / "storage") as reg:
            yield reg
    finally:
        shutil.rmtree(d, ignore_errors=True)
