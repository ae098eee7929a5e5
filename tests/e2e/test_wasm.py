"""The wasm class end to end through REST: python (CPython for WASI) and JavaScript (QuickJS-NG)
programs with argv, env, stdin, files and exit codes; snapshots and resets of /workspace; and the
typed refusals of what the class does not have."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.sdk import CommandNotFound, Shell

from .harness import running_server
from .rest import ShellMaker, error_of, ndjson, rest_client


def wasm_shell(make_rest_shell: ShellMaker, language: str = "python", **extra: Any) -> dict[str, Any]:
    sh = make_rest_shell(runtime="wasm", language=language, **extra)
    assert (sh["runtime"], sh["state"], sh["template"]) == ("wasm", "running", "wasm:1")
    return sh


def execw(api: httpx.Client, shell_id: str, cmd: list[str], **extra: Any) -> dict[str, Any]:
    r = api.post(f"/v1/shells/{shell_id}/exec", params={"wait": "true"}, json={"cmd": cmd, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def put(api: httpx.Client, shell_id: str, path: str, content: bytes) -> None:
    r = api.put(f"/v1/shells/{shell_id}/files", params={"path": path}, content=content)
    assert r.status_code == 200, r.text


def get(api: httpx.Client, shell_id: str, path: str) -> httpx.Response:
    return api.get(f"/v1/shells/{shell_id}/files", params={"path": path})


def test_a_python_program_gets_argv_env_stdin_and_its_exit_code(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell, env={"FROM_SHELL": "s"})
    code = (
        "import sys, os, json, sqlite3, hashlib\n"
        "data = sys.stdin.read()\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': os.environ.get('FROM_SHELL'),\n"
        "  'req': os.environ.get('FROM_REQ'), 'stdin': data, 'sqlite': sqlite3.sqlite_version,\n"
        "  'sha': hashlib.sha256(data.encode()).hexdigest()[:8], 'host_env': 'PATH' in os.environ}))\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(7)\n"
    )
    put(api, sh["id"], "/workspace/main.py", code.encode())
    r = api.post(
        f"/v1/shells/{sh['id']}/exec",
        params={"wait": "true"},
        json={"cmd": ["python3", "main.py", "a b", "c"], "env": {"FROM_REQ": "r"}, "stdin": "hello"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["exit_code"] == 7 and out["stderr"] == "to stderr\n", out
    got = json.loads(out["stdout"])
    assert got["argv"] == ["a b", "c"] and got["stdin"] == "hello"
    assert (got["env"], got["req"], got["host_env"]) == ("s", "r", False)
    assert got["sqlite"].startswith("3.") and len(got["sha"]) == 8


def test_a_python_program_writes_files_the_files_api_reads_and_lists(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell)
    assert (
        api.post(f"/v1/shells/{sh['id']}/files/mkdir", params={"path": "/workspace/d/e"}).status_code == 201
    )
    out = execw(
        api,
        sh["id"],
        [
            "python",
            "-c",
            "open('out.txt','w').write('made in wasm'); open('/workspace/d/e/x','w').write('1')",
        ],
    )
    assert out["exit_code"] == 0, out
    assert get(api, sh["id"], "/workspace/out.txt").content == b"made in wasm"
    listing = api.get(f"/v1/shells/{sh['id']}/files/list", params={"path": "/workspace"}).json()
    names = {e["name"]: e["kind"] for e in listing["entries"]}
    assert names == {"out.txt": "file", "d": "dir"}
    sub = execw(api, sh["id"], ["python", "-c", "print(open('x').read())"], cwd="/workspace/d/e")
    assert sub["stdout"] == "1\n", sub
    assert (
        api.delete(
            f"/v1/shells/{sh['id']}/files", params={"path": "/workspace/d", "recursive": "true"}
        ).status_code
        == 204
    )
    error_of(get(api, sh["id"], "/workspace/d/e/x"), 404, "file_not_found")
    error_of(get(api, sh["id"], "/etc/passwd"), 400, "invalid_path")


def test_javascript_runs_on_quickjs_and_says_it_is_not_node(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell, language="node")
    put(
        api,
        sh["id"],
        "/workspace/main.js",
        b"console.log([1, 2, 3].map((x) => x * 2).join('-'), typeof require)\n",
    )
    out = execw(api, sh["id"], ["node", "main.js"])
    assert (out["stdout"], out["exit_code"]) == ("2-4-6 undefined\n", 0), out
    run = api.post(f"/v1/shells/{sh['id']}/run", params={"wait": "true"}, json={"code": "console.log(6 * 7)"})
    assert run.status_code == 200 and run.json()["stdout"] == "42\n", run.text
    runtimes = api.get("/v1/info").json()["runtimes"]
    assert "wasm" in runtimes


def test_run_python_streams_started_output_and_exit(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    lines = ndjson(api, f"/v1/shells/{sh['id']}/run", {"code": "import sys\nprint(1 + 1)\nsys.exit(3)\n"})
    assert lines[0]["type"] == "started"
    assert [line["data"] for line in lines if line["type"] == "stdout"] == ["2\n"]
    assert lines[-1]["type"] == "exit" and lines[-1]["exit_code"] == 3


def test_snapshot_then_create_from_it_and_wipe_state(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    put(api, sh["id"], "/workspace/keep.txt", b"v1")
    r = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "snapshot"})
    assert r.status_code == 200, r.text
    snap = r.json()["result"]["snapshot"]["id"]
    put(api, sh["id"], "/workspace/keep.txt", b"v2")
    copy = make_rest_shell(runtime="wasm", snapshot=snap)
    assert copy["runtime"] == "wasm"
    assert get(api, copy["id"], "/workspace/keep.txt").content == b"v1"
    assert get(api, sh["id"], "/workspace/keep.txt").content == b"v2"
    r = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "wipe_state"})
    assert r.status_code == 200, r.text
    error_of(get(api, sh["id"], "/workspace/keep.txt"), 404, "file_not_found")
    assert get(api, copy["id"], "/workspace/keep.txt").content == b"v1"
    stop = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "stop"})
    assert stop.json()["shell"]["state"] == "stopped", stop.text
    error_of(
        api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["python", "-c", "1"]}), 409, "invalid_state"
    )
    start = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "start"})
    assert start.json()["shell"]["state"] == "running", start.text
    logs = api.post(f"/v1/shells/{copy['id']}/actions", json={"capability": "logs"})
    assert logs.status_code == 200, logs.text


def test_what_the_class_does_not_have_is_a_typed_error(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell)
    err = error_of(
        api.post(f"/v1/shells/{sh['id']}/exec", json={"command": "echo hi"}), 400, "command_not_found"
    )
    assert "container" in err["message"]
    err = error_of(api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["ls"]}), 400, "command_not_found")
    assert "python" in err["message"] and "node" in err["message"]
    error_of(api.post("/v1/shells", json={"runtime": "wasm", "language": "bash"}), 409, "feature_unavailable")
    error_of(
        api.post("/v1/shells", json={"runtime": "wasm", "language": "python", "template": "python:1"}),
        400,
        "invalid_request",
    )
    error_of(
        api.post(
            "/v1/shells", json={"runtime": "wasm", "language": "python", "network": {"mode": "internet"}}
        ),
        409,
        "feature_unavailable",
    )
    error_of(api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["nope.wasm"]}), 404, "file_not_found")
    error_of(api.post(f"/v1/shells/{sh['id']}/term", json={}), 409, "action_not_supported")
    put(api, sh["id"], "/workspace/bad.wasm", b"\0asm garbage")
    err = error_of(
        api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["bad.wasm"]}), 400, "invalid_request"
    )
    assert "WebAssembly" in err["message"]


def test_pause_resume_and_fork_carry_the_workspace(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    put(api, sh["id"], "/workspace/state.txt", b"parent")
    r = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "pause"})
    assert r.status_code == 200 and r.json()["shell"]["state"] == "paused", r.text
    out = execw(api, sh["id"], ["python", "-c", "print(open('state.txt').read())"])  # resumes it first
    assert out["stdout"] == "parent\n", out
    assert api.get(f"/v1/shells/{sh['id']}").json()["state"] == "running"
    r = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "fork", "count": 2})
    assert r.status_code == 200, r.text
    children = r.json()["result"]["shells"]
    try:
        assert [c["state"] for c in children] == ["running", "running"]
        assert all(c["runtime"] == "wasm" for c in children)
        put(api, children[0]["id"], "/workspace/state.txt", b"child 1")
        assert get(api, children[1]["id"], "/workspace/state.txt").content == b"parent"
        assert get(api, sh["id"], "/workspace/state.txt").content == b"parent"
    finally:
        for child in children:
            api.delete(f"/v1/shells/{child['id']}")


def test_pause_while_a_program_runs_is_refused(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    body = {"cmd": ["python", "-c", "print('up', flush=True)\nwhile True: pass"], "timeout_s": 20}
    with api.stream("POST", f"/v1/shells/{sh['id']}/exec", json=body) as r:
        lines = r.iter_lines()
        for raw in lines:
            if json.loads(raw)["type"] == "stdout":
                break
        refused = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "pause"})
        error_of(refused, 409, "invalid_state")
        stop = api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "stop"})
        assert stop.status_code == 200, stop.text
        tail = [json.loads(raw) for raw in lines]
    assert tail and tail[-1]["type"] == "error", tail


def test_the_runtime_matrix_tells_the_wasm_truth(api: httpx.Client) -> None:
    rows = {r["language"]: r for r in api.get("/v1/runtimes").json()["runtimes"] if r["runtime"] == "wasm"}
    assert rows["python"]["available"] and rows["python"]["version"] == "3.12.0"
    assert rows["node"]["available"] and "not Node.js" in rows["node"]["notes"]
    assert not rows["bash"]["available"] and "container" in rows["bash"]["notes"]
    details = api.get("/v1/info").json()["runtimes"]["wasm"]["details"]
    assert details["engine"].startswith("wasmtime ") and details["wasi"] == "preview1"
    assert details["disk_quota"] == "btrfs squota"  # full qgroups stop holding after big deletes


@pytest.fixture(scope="module")
def build_template(api: httpx.Client) -> None:
    """The container template rust and go are compiled in (built once, or imported from the cache)."""
    r = api.post("/v1/templates/build", params={"wait": "true"}, json={"builtin": "wasm-build:1"})
    assert r.status_code == 200, r.text


@pytest.mark.usefixtures("build_template")
def test_rust_and_go_compile_in_a_container_and_run_here(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    rows = {r["language"]: r for r in api.get("/v1/runtimes").json()["runtimes"] if r["runtime"] == "wasm"}
    assert rows["rust"]["available"] and rows["go"]["available"], rows
    sh = wasm_shell(make_rest_shell, language="rust")
    rust = (
        "fn main() {\n"
        '    println!("{} {}", 6 * 7, std::env::args().count());\n'
        "    std::process::exit(3);\n"
        "}\n"
    )
    out = api.post(f"/v1/shells/{sh['id']}/run", params={"wait": "true"}, json={"code": rust}).json()
    assert (out["stdout"], out["exit_code"]) == ("42 1\n", 3), out
    go = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("go", 6*7) }\n'
    out = api.post(f"/v1/shells/{sh['id']}/run", params={"wait": "true"}, json={"code": go, "language": "go"})
    assert (out.json()["stdout"], out.json()["exit_code"]) == ("go 42\n", 0), out.text
    broken = api.post(f"/v1/shells/{sh['id']}/run", params={"wait": "true"}, json={"code": "fn main() { x }"})
    assert broken.json()["exit_code"] != 0 and "error" in broken.json()["stderr"], broken.text


@pytest.mark.usefixtures("build_template")
def test_the_compiler_never_reads_host_files(
    api: httpx.Client, make_rest_shell: ShellMaker, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("the host's secret 7f3a")
    sh = wasm_shell(make_rest_shell, language="rust")
    leak = f'fn main() {{ print!("{{}}", include_str!("{secret}")); }}\n'
    out = api.post(f"/v1/shells/{sh['id']}/run", params={"wait": "true"}, json={"code": leak}).json()
    assert out["exit_code"] != 0 and "7f3a" not in out["stdout"] + out["stderr"], out
    assert "couldn't read" in out["stderr"] or "No such file" in out["stderr"], out


def gone_or_zombie(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_a_server_crash_loses_no_wasm_shell_and_leaves_no_worker(data_root: Path) -> None:
    with running_server(data_root / "wasm-crash", warm_pool=0) as srv, rest_client(srv) as api:
        kept = wasm_shell(lambda **b: api.post("/v1/shells", json=b).json())
        stopped = wasm_shell(lambda **b: api.post("/v1/shells", json=b).json())
        put(api, kept["id"], "/workspace/note.txt", b"still here")
        api.post(f"/v1/shells/{stopped['id']}/actions", json={"capability": "stop"})
        lines = ndjson(api, f"/v1/shells/{kept['id']}/exec", {"cmd": ["python", "-c", "print(1)"]})
        worker = int(lines[0]["pid"])
        srv.kill9()
        assert gone_or_zombie(worker, within_s=10)  # workers die with the server
        orphan = srv.data_dir / "storage" / "pool" / "wasm" / "shells" / "sh_orphan"
        orphan.mkdir()
        srv.start()
        assert api.get(f"/v1/shells/{kept['id']}").json()["state"] == "running"
        assert get(api, kept["id"], "/workspace/note.txt").content == b"still here"
        assert execw(api, kept["id"], ["python", "-c", "print(1+1)"])["stdout"] == "2\n"
        assert api.get(f"/v1/shells/{stopped['id']}").json()["state"] == "stopped"
        assert not orphan.exists()


def test_the_sdk_drives_a_wasm_shell(make_shell: Callable[..., Shell]) -> None:
    shell = make_shell("python", runtime="wasm")
    assert shell.info.runtime == "wasm"
    shell.files.write("/workspace/data.txt", "6 7")
    result = shell.commands.run(
        ["python", "-c", "a, b = open('data.txt').read().split(); print(int(a) * int(b))"]
    )
    assert (result.stdout, result.exit_code) == ("42\n", 0)
    with pytest.raises(CommandNotFound):
        shell.commands.run("ls -la")
