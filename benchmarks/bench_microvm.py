"""The microvm class end to end through a real server: restore vs cold boot, pause, resume, fork.

    python -m benchmarks.bench_microvm [--runs 5]

Starts its own server (no container warm pool; a microvm warm pool of one,
``SHELLS_MICROVM_WARM_POOL_SIZE``) and pre-boots the python template once (not timed). Then, in
the same run, medians of:
- create → first output, pooled: a create that claims the pool's VM (restored, one ``true`` run),
  until ``echo`` answers; the pool is full before each (not timed);
- create → first output, pool miss: a shell restored from the pre-booted template by the create
  itself (``localhost`` network, which the pool does not hold);
- cold boot → first output: ``stop`` + ``start`` of the same shell (start boots the kernel), the
  baseline both creates are compared with;
- pause: the API call, until the VM's QEMU is gone (the first pause of a restored shell also writes
  its copy-on-write RAM; later ones save device state only — both are shown);
- resume → first output;
- fork x4 → all four children answered an exec: asked one after the other, and asked at once (as
  a caller that wants them all would);
- PSS (host memory) per idle fork and idle CPU per VM (% of one core, over 10 s);
- exec round trip of ``true`` in a running shell (after one untimed exec: the first one after a
  restore pays for translating the guest's exec path, see docs/microvm.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.harness import ServerProcess

from shells.sdk import Shell
from shells.settings import Settings
from shells.store.repository import Store

CLK_TCK = 100


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_output(shell: Shell) -> None:
    out = shell.commands.run(["echo", "hi"])
    assert out.stdout == "hi\n", out


def resume_to_output(shell: Shell) -> float:
    clock = time.perf_counter()
    shell.resume()
    first_output(shell)
    return time.perf_counter() - clock


def qemu_pid(run_dir: Path, shell_id: str) -> int:
    return int((run_dir / "microvm" / shell_id / "qemu.pid").read_text(encoding="utf-8"))


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no Pss line")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_pool_full(store: Store, timeout_s: float = 120.0) -> None:
    """Until the microvm pool holds a running VM (a claim would find one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(s.state == "running" and s.runtime == "microvm" for s in store.list_shells(None, pooled=True)):
            return
        time.sleep(0.05)
    raise RuntimeError("the microvm warm pool did not fill in time")


def report(name: str, values: list[float], unit: str = "s") -> float:
    med = statistics.median(values)
    spread = f"min {min(values):.3f}, max {max(values):.3f}, n={len(values)}"
    print(f"{name:<36} median {med:8.3f} {unit}  ({spread})")
    return med


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="shells-bench-microvm-", dir="/var/tmp"))
    env = {
        "SHELLS_QUOTA_MAX_VCPUS": "40",
        "SHELLS_QUOTA_MAX_SHELLS": "40",
        "SHELLS_MICROVM_WARM_POOL_SIZE": "1",
    }
    server = ServerProcess(data / "srv", warm_pool=0, env=env)
    server.start()
    run_dir = Settings(data_dir=server.data_dir).run_dir
    store = Store(server.record_url)
    created: list[Shell] = []
    try:
        with server.client() as client:

            def create(network: str = "sealed") -> Shell:
                shell = client.create("python", runtime="microvm", idle_timeout_s=0, network=network)
                created.append(shell)
                return shell

            print("accel:", client.info()["runtimes"]["microvm"]["details"]["accel"])
            first_output(create())  # pre-boots the template image once
            names = (
                "create -> first output", "create, pool miss -> first output", "cold boot -> first output",
                "first pause (CoW RAM)", "pause (own RAM file)", "first resume -> first output",
                "resume -> first output",
                "fork x4 -> all answer", "fork x4 -> all answer (asked at once)", "exec true",
            )  # fmt: skip
            t: dict[str, list[float]] = {k: [] for k in names}
            for _ in range(args.runs):
                clock = time.perf_counter()
                missed = create("localhost")
                first_output(missed)
                t["create, pool miss -> first output"].append(time.perf_counter() - clock)
                missed.kill()
                wait_pool_full(store)
                clock = time.perf_counter()
                shell = create()
                first_output(shell)
                t["create -> first output"].append(time.perf_counter() - clock)
                t["first pause (CoW RAM)"].append(timed(shell.pause))
                t["first resume -> first output"].append(resume_to_output(shell))
                t["pause (own RAM file)"].append(timed(shell.pause))
                t["resume -> first output"].append(resume_to_output(shell))
                shell.commands.run(["true"])  # the first after a resume is in "resume -> first output"
                for _ in range(10):
                    clock = time.perf_counter()
                    shell.commands.run(["true"])
                    t["exec true"].append((time.perf_counter() - clock) * 1000)
                shell.stop()
                clock = time.perf_counter()
                shell.start()
                first_output(shell)
                t["cold boot -> first output"].append(time.perf_counter() - clock)
                shell.kill()
            wait_pool_full(store)
            parent = create()
            first_output(parent)
            children: list[Shell] = []
            for _ in range(max(1, args.runs // 2)):
                for name in ("fork x4 -> all answer", "fork x4 -> all answer (asked at once)"):
                    clock = time.perf_counter()
                    kids = parent.fork(4)
                    if name.endswith("at once)"):
                        with ThreadPoolExecutor(len(kids)) as pool:
                            list(pool.map(first_output, kids))
                    else:
                        for kid in kids:
                            first_output(kid)
                    t[name].append(time.perf_counter() - clock)
                    children.extend(kids)
            time.sleep(5)  # let them settle before measuring idle cost
            kid_pids = [qemu_pid(run_dir, k.id) for k in children[:4]]
            pss = [pss_mb(pid) for pid in kid_pids]
            before = [cpu_ticks(pid) for pid in kid_pids]
            time.sleep(10)
            idle = [
                (cpu_ticks(pid) - b) / CLK_TCK / 10 * 100 for pid, b in zip(kid_pids, before, strict=True)
            ]
            print(f"runs: {args.runs}")
            create_med = report("create (pooled) -> first output", t["create -> first output"])
            miss_med = report("create, pool miss -> first output", t["create, pool miss -> first output"])
            cold_med = report("cold boot -> first output", t["cold boot -> first output"])
            print(f"{'':<36} cold boot / create = {cold_med / create_med:.1f}x (pooled), "
                  f"{cold_med / miss_med:.1f}x (pool miss)")  # fmt: skip
            shown = ("first pause (CoW RAM)", "pause (own RAM file)", "first resume -> first output",
                     "resume -> first output", "fork x4 -> all answer",
                     "fork x4 -> all answer (asked at once)")  # fmt: skip
            for name in shown:
                report(name, t[name])
            report("exec true round trip", t["exec true"], "ms")
            report("PSS per idle fork", pss, "MB")
            report("idle CPU per fork", idle, "% of a core")
            for child in children:
                child.kill()
    finally:
        for shell in created:
            with contextlib.suppress(Exception):  # already gone
                shell.kill()
        store.close()
        server.purge()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
