"""wasm-class latency and footprint, with baselines measured in the same run, round-robin.

    python -m benchmarks.bench_wasm [--runs 20] [--idle-shells 50]

Medians over ``--runs`` of, through REST on a real server:
- create a wasm shell → first stdout chunk of ``python -c 'print(1+1)'`` (streamed exec), and of
  ``node -e 'console.log(1+1)'`` (QuickJS), against native ``/usr/bin/python3 -c`` / ``node -e`` fork/exec and
  a container-class shell (a warm-pool claim) doing the same ``python3 -c``;
- a second exec of ``print(1+1)`` in the same wasm shell (``?wait=true`` round trip), against the
  same exec in a container shell, and the CPU time that exec costs its worker (not inflated by
  other load on the host, which the wall-clock rows are);
with ``--compiled``, also ``run`` of a rust and a go hello world in a wasm shell (compiled in a
throwaway container shell from ``wasm-build:1``, which is built first, then run here);
then the memory an idle wasm shell costs: the PSS of the server and its wasm workers before and
after creating ``--idle-shells`` shells (each having run one program), divided by their number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

from benchmarks.bench_container import ms, table

PY = ["python", "-c", "print(1+1)"]
NATIVE_PYTHON = "/usr/bin/python3"
"""Debian's own interpreter: ``python3`` on PATH may be a version manager's shell-script shim."""
JS = ["node", "-e", "console.log(1+1)"]


def first_output(http: httpx.Client, sid: str, cmd: list[str]) -> None:
    with http.stream("POST", f"/v1/shells/{sid}/exec", json={"cmd": cmd}) as s:
        for line in s.iter_lines():
            if json.loads(line).get("type") == "stdout":
                return
    raise RuntimeError(f"{cmd} printed nothing")


def create_then_output(http: httpx.Client, body: dict[str, object], cmd: list[str]) -> str:
    r = http.post("/v1/shells", json=body)
    r.raise_for_status()
    sid = str(r.json()["id"])
    first_output(http, sid, cmd)
    return sid


def exec_wait(http: httpx.Client, sid: str, cmd: list[str]) -> None:
    r = http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"cmd": cmd})
    r.raise_for_status()
    assert r.json()["stdout"] == "2\n", r.text


def cpu_ms(pid: int) -> float:
    """CPU time used so far by every thread of ``pid`` (schedstat: nanoseconds on the CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text(encoding="utf-8").split()[0])
    return total / 1e6


def worker_cpu_per_exec(http: httpx.Client, runs: int) -> list[float]:
    """The CPU one ``print(1+1)`` costs its worker (load-independent, unlike the wall-clock rows):
    sequential execs reuse one worker, so its CPU time is read around each."""
    sid = str(http.post("/v1/shells", json={"runtime": "wasm", "language": "python"}).json()["id"])
    with http.stream("POST", f"/v1/shells/{sid}/exec", json={"cmd": PY}) as s:
        lines = s.iter_lines()
        pid = int(json.loads(next(lines))["pid"])
        for _ in lines:
            pass
    costs = []
    for _ in range(runs):
        before = cpu_ms(pid)
        exec_wait(http, sid, PY)
        costs.append(cpu_ms(pid) - before)
    http.delete(f"/v1/shells/{sid}")
    return costs


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8").splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def server_pids(server: ServerProcess) -> list[int]:
    """The server process and its children (the wasm workers)."""
    assert server.proc is not None
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout.split()
    pairs = list(zip(map(int, out[::2]), map(int, out[1::2]), strict=True))
    return [server.proc.pid, *(pid for pid, ppid in pairs if ppid == server.proc.pid)]


RUST = 'fn main() { println!("hi"); }\n'
GO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n'


def compiled_runs(http: httpx.Client, runs: int, rows: dict[str, list[float]]) -> None:
    build = http.post("/v1/templates/build", params={"wait": "true"}, json={"builtin": "wasm-build:1"})
    build.raise_for_status()
    sid = str(http.post("/v1/shells", json={"runtime": "wasm", "language": "rust"}).json()["id"])
    for _ in range(runs):
        for name, code, language in (("rust", RUST, "rust"), ("go", GO, "go")):

            def run(code: str = code, language: str = language) -> None:
                body = {"code": code, "language": language}
                r = http.post(f"/v1/shells/{sid}/run", params={"wait": "true"}, json=body)
                assert r.json()["stdout"] == "hi\n", r.text

            rows[f"wasm: run {name} hello (compile in container + run)"].append(ms(run))
    http.delete(f"/v1/shells/{sid}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle-shells", type=int, default=50)
    ap.add_argument("--compiled", action="store_true", help="also time rust and go runs")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-", dir="/var/tmp"))
    server = ServerProcess(root / "data", warm_pool=2)
    server.env = {
        "SHELLS_QUOTA_MAX_SHELLS": str(args.idle_shells + 10),
        "SHELLS_QUOTA_MAX_MEMORY_MIB": str(512 * (args.idle_shells + 10)),
        "SHELLS_QUOTA_MAX_VCPUS": str(args.idle_shells + 10),
    }
    server.start()
    node = shutil.which("node")
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "wasm: create + first output of print(1+1)",
            "wasm: create + first output of JS console.log",
            "wasm: second exec print(1+1), REST",
            "wasm: worker CPU per print(1+1) exec",
            "native fork/exec /usr/bin/python3 -c print(1+1)",
            "native fork/exec node -e console.log",
            "container: create + first output of print(1+1)",
            "container: second exec print(1+1), REST",
            "wasm: run rust hello (compile in container + run)",
            "wasm: run go hello (compile in container + run)",
        )
    }
    idle_kib = 0.0
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
        ) as http:
            wasm: dict[str, object] = {"runtime": "wasm", "language": "python"}
            for _ in range(args.runs):
                sid = ""

                def py() -> None:
                    nonlocal sid
                    sid = create_then_output(http, wasm, PY)

                rows["wasm: create + first output of print(1+1)"].append(ms(py))
                rows["wasm: second exec print(1+1), REST"].append(
                    ms(lambda sid=sid: exec_wait(http, sid, PY))  # type: ignore[misc]
                )
                http.delete(f"/v1/shells/{sid}")

                def js() -> None:
                    nonlocal sid
                    sid = create_then_output(http, {"runtime": "wasm", "language": "node"}, JS)

                rows["wasm: create + first output of JS console.log"].append(ms(js))
                http.delete(f"/v1/shells/{sid}")
                rows["native fork/exec /usr/bin/python3 -c print(1+1)"].append(
                    ms(
                        lambda: subprocess.run(
                            [NATIVE_PYTHON, "-c", "print(1+1)"], check=True, capture_output=True
                        )
                    )
                )
                if node:
                    rows["native fork/exec node -e console.log"].append(
                        ms(
                            lambda: subprocess.run(
                                [node, "-e", "console.log(1+1)"], check=True, capture_output=True
                            )
                        )
                    )
                server.wait_pool_ready()

                def container() -> None:
                    nonlocal sid
                    sid = create_then_output(http, {"language": "python"}, ["python3", "-c", "print(1+1)"])

                rows["container: create + first output of print(1+1)"].append(ms(container))
                rows["container: second exec print(1+1), REST"].append(
                    ms(lambda sid=sid: exec_wait(http, sid, ["python3", "-c", "print(1+1)"]))  # type: ignore[misc]
                )
                http.delete(f"/v1/shells/{sid}")
            rows["wasm: worker CPU per print(1+1) exec"] = worker_cpu_per_exec(http, args.runs)
            if args.compiled:
                compiled_runs(http, args.runs, rows)
            time.sleep(2)
            before = pss_kib(server_pids(server))
            idle = [create_then_output(http, wasm, PY) for _ in range(args.idle_shells)]
            time.sleep(2)
            after = pss_kib(server_pids(server))
            idle_kib = (after - before) / args.idle_shells
            for sid in idle:
                http.delete(f"/v1/shells/{sid}")
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"runs: {args.runs}; load average {load}")
    print(
        table(
            [(k, v) for k, v in rows.items() if v],
            {
                "wasm: create + first output of print(1+1)": "container: create + first output of print(1+1)",
                "wasm: second exec print(1+1), REST": "container: second exec print(1+1), REST",
            },
        )
    )
    print(
        f"idle memory per wasm shell: {idle_kib:.0f} KiB (server + worker PSS growth over "
        f"{args.idle_shells} shells, each having run print(1+1))"
    )


if __name__ == "__main__":
    main()
