"""What OCI images cost: importing a multi-layer image, and starting shells from imported templates.

    python -m benchmarks.bench_oci [--runs 5]

Runs against the tests' local registry (Debian's docker-registry, TLS and basic auth, on loopback)
and a scratch container backend:

- import of ``debian:1`` (three layers, ~80 MB compressed, ~300 MB unpacked) with a cold blob store
  each run: download with every digest checked, then the layers applied into a btrfs subvolume and
  published as a template; against ``skopeo copy`` of the same image from the same registry into an
  OCI layout directory (download and digest checks, no unpacking), in the same run;
- shell start (create + first exec) from the imported ``debian:1`` and ``busybox:1`` (no Python: the
  agent runs from the host's runtime) against the built-in ``python:1``, alternating.

Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio
from tests.support.oci_registry import PASSWORD, USER, Registry, local_registry

from shells.domain.oci import host_platform, parse_image_ref
from shells.domain.templates import BuildEvent
from shells.runtime.container.backend import ContainerBackend
from shells.runtime.oci.blobs import BlobStore
from shells.runtime.oci.importer import image_meta, pull, resolve, unpack
from shells.runtime.oci.registry import RegistryClient, tls_context
from shells.settings import Settings

from .bench_templates import start_times


def _quiet(_: BuildEvent) -> None:
    pass


async def import_once(
    backend: ContainerBackend, reg: Registry, repo: str, name: str, blobs: Path
) -> tuple[float, float]:
    """(seconds to download, seconds to unpack and publish) of one import into an empty blob store."""
    ref = parse_image_ref(reg.ref(repo))
    store = BlobStore(blobs)
    started = time.perf_counter()
    async with RegistryClient(ref, reg.credentials, tls_context((reg.ca_file,))) as client:
        resolved = await resolve(client, ref, host_platform(platform.machine()))
        image = await pull(client, resolved, store, _quiet)
    pulled = time.perf_counter()
    await unpack(backend.template_bits, store, image, image_meta(name, image), _quiet)
    return pulled - started, time.perf_counter() - pulled


def skopeo_once(reg: Registry, repo: str, dest: Path) -> float:
    certs = dest.parent / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(reg.ca_file, certs / "ca.crt")
    argv = ["skopeo", "copy", "-q", "--src-cert-dir", str(certs), "--src-creds", f"{USER}:{PASSWORD}",
            f"docker://{reg.ref(repo)}", f"oci:{dest}:latest"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


async def bench(root: Path, runs: int) -> None:
    backend = ContainerBackend(Settings(data_dir=root / "instance"), say=lambda _: None)
    try:
        await backend.prepare()
        with local_registry() as reg:
            ours: list[tuple[float, float]] = []
            theirs: list[float] = []
            for i in range(runs):
                blobs = root / f"blobs-{i}"
                ours.append(await import_once(backend, reg, "debian:1", f"deb-{i}:1", blobs))
                shutil.rmtree(blobs)
                await backend.delete_template(f"deb-{i}:1")
                if shutil.which("skopeo"):
                    out = root / f"skopeo-{i}"
                    theirs.append(skopeo_once(reg, "debian:1", out / "layout"))
                    shutil.rmtree(out)
            total = statistics.median(a + b for a, b in ours)
            print(f"import of debian:1 (3 layers), runs: {runs}")
            download = statistics.median(a for a, _ in ours)
            applied = statistics.median(b for _, b in ours)
            print(f"  shells import   median {total:6.2f} s  (download {download:.2f}, unpack {applied:.2f})")
            if theirs:
                print(f"  skopeo copy     median {statistics.median(theirs):6.2f} s  (download only)")
                print(f"  shells / skopeo: {total / statistics.median(theirs):.2f}x")
            blobs = root / "blobs"
            await import_once(backend, reg, "debian:1", "debian:1", blobs)
            await import_once(backend, reg, "busybox:1", "busybox:1", blobs)
        timings = await start_times(backend, ["python:1", "debian:1", "busybox:1"], max(runs, 5))
        med = {t: statistics.median(v) for t, v in timings.items()}
        print(f"\nshell start (create + first exec), runs: {len(timings['python:1'])}")
        for template, values in timings.items():
            print(f"  from {template:<10} median {med[template]:7.1f} ms  min {min(values):7.1f} ms")
        for template in ("debian:1", "busybox:1"):
            print(f"  {template} / python:1: {med[template] / med['python:1']:.2f}x")
    finally:
        await backend.purge()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-oci-", dir="/var/tmp"))
    try:
        anyio.run(bench, root, args.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
