"""What templates cost: cold builds of every built-in, and starting shells from a saved template.

    python -m benchmarks.bench_templates [--runs 10] [--cold]

Default: in a scratch instance (python:1 from the host cache), save a python shell with an extra
package as a template, then start and destroy shells from that saved template and from python:1,
alternating, and report medians with their ratio (a saved template should start as fast as a built-in).

``--cold`` also builds every built-in from an empty scratch cache (debootstrap included), one after
another as ``shells template build --all`` would, and reports each one's time, size in the pool and
size of its cached tarball. It downloads every package once, so it takes minutes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from shells.domain.execution import ExecExit, ExecSpec
from shells.domain.ids import new_id
from shells.domain.network import NetworkAccess
from shells.domain.shapes import DEFAULT_SHAPE, get_shape
from shells.domain.templates import TemplateKind, TemplateMeta
from shells.runtime.backend import ShellSpec
from shells.runtime.container.backend import ContainerBackend
from shells.runtime.templates.build_dns import dns_for_builds
from shells.runtime.templates.catalog import BASE_ROOTFS, artifact, builtins
from shells.settings import Settings


def spec(template: str) -> ShellSpec:
    return ShellSpec(new_id("bench"), template, get_shape(DEFAULT_SHAPE), NetworkAccess())


async def run(backend: ContainerBackend, host_id: str, command: str) -> None:
    async for event in backend.exec(host_id, ExecSpec(command=command)):
        if isinstance(event, ExecExit) and event.exit_code != 0:
            raise RuntimeError(f"{command!r} failed with exit code {event.exit_code}")


async def start_times(backend: ContainerBackend, templates: list[str], runs: int) -> dict[str, list[float]]:
    """Milliseconds of create + first exec of a shell of each template, alternating, ``runs`` times."""
    timings: dict[str, list[float]] = {t: [] for t in templates}
    for _ in range(runs):
        for template, values in timings.items():
            shell = spec(template)
            started = time.perf_counter()
            await backend.create(shell)
            await run(backend, shell.host_id, "true")
            values.append((time.perf_counter() - started) * 1000)
            await backend.destroy(shell.host_id)
    return timings


async def cold_builds(root: Path) -> None:
    cache = root / "cache"
    backend = ContainerBackend(Settings(data_dir=root / "cold", cache_dir=cache), say=lambda _: None)
    try:
        started = time.monotonic()
        await backend.prepare()  # base:1 (debootstrap) and python:1, as `make up` does
        times = {"base:1 + python:1 (prepare)": time.monotonic() - started}
        async with dns_for_builds(backend.network):
            for name in builtins():
                if backend.template_meta(name) is None:
                    started = time.monotonic()
                    await backend.ensure_template(name)
                    times[name] = time.monotonic() - started
        print("cold builds from an empty cache, one after another:")
        for what, seconds in times.items():
            print(f"  {what:<28} {seconds:6.0f} s")
        print(f"  {'total':<28} {sum(times.values()):6.0f} s")
        print(f"{'template':<10} {'in pool MB':>11} {'cached MB':>10}")
        for name, b in builtins().items():
            meta = backend.template_meta(name)
            assert meta is not None and meta.size_bytes is not None
            packed = cache / BASE_ROOTFS.tarball_name() if b.spec is None else artifact(cache, b)
            print(f"{name:<10} {meta.size_bytes / 1e6:>11.0f} {packed.stat().st_size / 1e6:>10.0f}")
    finally:
        await backend.purge()


async def saved_vs_builtin(root: Path, runs: int) -> None:
    backend = ContainerBackend(Settings(data_dir=root / "warm"), say=lambda _: None)
    try:
        await backend.prepare()
        source = spec("python:1")
        await backend.create(source)
        await run(
            backend, source.host_id, "mkdir -p /opt/tool && head -c 50000000 /dev/urandom > /opt/tool/blob"
        )
        python = backend.template_meta("python:1")
        assert python is not None
        saved = TemplateMeta(
            "bench-saved:1", TemplateKind.SAVED, "python:1", "s" * 64, workdir=python.workdir
        )
        await backend.capture_template(source.host_id, saved, include_workspace=False)
        await backend.destroy(source.host_id)
        timings = await start_times(backend, ["python:1", "bench-saved:1"], runs)
        med = {t: statistics.median(v) for t, v in timings.items()}
        print(f"\nshell start (create + first exec), runs: {runs}")
        for template, values in timings.items():
            print(f"  from {template:<14} median {med[template]:7.1f} ms  min {min(values):7.1f} ms")
        print(f"  saved / built-in: {med['bench-saved:1'] / med['python:1']:.2f}x")
    finally:
        await backend.purge()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cold", action="store_true", help="also build every built-in from an empty cache")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-tpl-", dir="/var/tmp"))
    try:
        if args.cold:
            anyio.run(cold_builds, root)
        anyio.run(saved_vs_builtin, root, args.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
