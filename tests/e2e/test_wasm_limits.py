"""Each limit of the wasm class stops runaway code with a typed result, and the host stays untouched:
CPU by the epoch deadline, memory by the store limit, disk by the /workspace qgroup, output by the
cap; traps, sockets, symlinks out of /workspace and a dying worker are answered, never followed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import wasmtime

from shells.domain.limits import EXEC_OUTPUT_CAP_BYTES

from .rest import ShellMaker, error_of
from .test_wasm import execw, get, put, wasm_shell

MIB = 1 << 20


def upload_wat(api: httpx.Client, shell_id: str, path: str, wat: str) -> None:
    put(api, shell_id, path, bytes(wasmtime.wat2wasm(wat)))


def test_an_infinite_loop_ends_at_the_timeout(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    out = execw(api, sh["id"], ["python", "-c", "while True: pass"], timeout_s=1)
    assert (out["timed_out"], out["exit_code"]) == (True, 137), out
    assert 900 < out["duration_ms"] < 5000, out
    js = execw(api, sh["id"], ["node", "-e", "for (;;) {}"], timeout_s=0.5)
    assert js["timed_out"] is True, js
    again = execw(api, sh["id"], ["python", "-c", "print('still fine')"])
    assert again["stdout"] == "still fine\n"


def test_a_memory_bomb_meets_the_shape_memory_limit(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell, shape="s-1vcpu-512mb")
    bomb = "x = []\nwhile True: x.append(bytearray(16 << 20))\n"
    out = execw(api, sh["id"], ["python", "-c", bomb])
    assert out["exit_code"] == 1 and "MemoryError" in out["stderr"], out
    # A raw module that grows its memory page by page until memory.grow fails, then exits with the
    # memory it got in units of 8 MiB (exit codes stop at 125): the store limit (512 MiB = 64 units),
    # not wasm32's 4 GiB.
    upload_wat(
        api,
        sh["id"],
        "/workspace/grow.wasm",
        """(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (block $full (loop $more
              (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
              (br $more)))
            (call $exit (i32.div_u (memory.size) (i32.const 128)))))""",
    )
    grown = execw(api, sh["id"], ["grow.wasm"])
    assert 62 <= grown["exit_code"] <= 64, grown


def test_a_trap_is_an_exit_code_and_a_message(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    upload_wat(api, sh["id"], "/workspace/trap.wasm", '(module (func (export "_start") unreachable))')
    out = execw(api, sh["id"], ["/workspace/trap.wasm"])
    assert out["exit_code"] == 134 and "wasm trap" in out["stderr"], out
    upload_wat(api, sh["id"], "/workspace/lib.wasm", '(module (func (export "f")))')
    err = error_of(
        api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["lib.wasm"]}), 400, "invalid_request"
    )
    assert "_start" in err["message"]
    upload_wat(
        api,
        sh["id"],
        "/workspace/imports.wasm",
        '(module (import "env" "socket" (func)) (func (export "_start")))',
    )
    err = error_of(
        api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["imports.wasm"]}), 400, "invalid_request"
    )
    assert "cannot start" in err["message"]


def test_filling_the_disk_stops_at_the_workspace_quota(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell, shape="s-1vcpu-512mb")
    fill = (
        "import errno, json\n"
        "n = 0\n"
        "try:\n"
        "    with open('big', 'wb') as f:\n"
        "        while n < 2048:\n"
        "            f.write(b'x' * (1 << 20)); f.flush(); n += 1\n"
        "    print(json.dumps({'mib': n, 'err': None}))\n"
        "except OSError as e:\n"
        "    print(json.dumps({'mib': n, 'err': errno.errorcode.get(e.errno)}))\n"
    )
    out = execw(api, sh["id"], ["python", "-c", fill], timeout_s=120)
    assert out["exit_code"] == 0, out
    result = json.loads(out["stdout"])
    assert result["err"] in ("EDQUOT", "ENOSPC", "EIO"), out  # wasmtime reports EDQUOT as EIO
    assert 256 <= result["mib"] <= 512, result
    size = api.get(f"/v1/shells/{sh['id']}/files/stat", params={"path": "/workspace/big"}).json()
    assert size["size"] <= 512 * MIB
    assert api.delete(f"/v1/shells/{sh['id']}/files", params={"path": "/workspace/big"}).status_code == 204
    again = execw(api, sh["id"], ["python", "-c", "open('small', 'w').write('ok'); print('ok')"])
    assert again["stdout"] == "ok\n", again


def flood(api: httpx.Client, shell_id: str, cmd: list[str], timeout_s: float) -> tuple[int, dict[str, Any]]:
    """Stream an exec, counting its output bytes; returns them and the exit line."""
    total, last = 0, {}
    body = {"cmd": cmd, "timeout_s": timeout_s}
    with api.stream("POST", f"/v1/shells/{shell_id}/exec", json=body) as r:
        for raw in r.iter_lines():
            last = json.loads(raw)
            if last["type"] in ("stdout", "stderr"):
                total += len(last["data"].encode())
    return total, last


def test_an_output_flood_is_capped(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    total, done = flood(api, sh["id"], ["python", "-c", "while True: print('x' * 999)"], 60)
    assert done["type"] == "exit" and done["truncated"] is True, done
    assert total <= EXEC_OUTPUT_CAP_BYTES and done["timed_out"] is False, done  # writes fail past the cap
    total, done = flood(api, sh["id"], ["node", "-e", "for (;;) console.log('y'.repeat(1 << 20))"], 4)
    assert done["type"] == "exit" and done["truncated"] is True, done  # QuickJS ignores EPIPE: the timeout
    assert total <= EXEC_OUTPUT_CAP_BYTES


def test_no_socket_no_subprocess_no_host_env(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    probe = (
        "import json, os, socket, subprocess\n"
        "r = {}\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 22), timeout=1); r['net'] = 'connected'\n"
        "except Exception as e:\n"
        "    r['net'] = type(e).__name__\n"
        "try:\n"
        "    subprocess.run(['ls']); r['proc'] = 'ran'\n"
        "except OSError as e:\n"
        "    r['proc'] = type(e).__name__\n"
        "try:\n"
        "    open('/stdlib/lib/python3.12/os.pyc', 'wb').write(b'x'); r['stdlib'] = 'written'\n"
        "except OSError as e:\n"
        "    r['stdlib'] = type(e).__name__\n"
        "r['env'] = sorted(os.environ)\n"
        "r['root'] = sorted(os.listdir('/'))\n"
        "print(json.dumps(r))\n"
    )
    out = execw(api, sh["id"], ["python", "-c", probe])
    got = json.loads(out["stdout"])
    assert got["net"] != "connected" and got["proc"] != "ran" and got["stdlib"] != "written", got
    assert got["env"] == ["HOME", "LANG", "PYTHONHOME"], got  # PYTHONHOME: the read-only /stdlib
    assert got["root"] in ([], ["stdlib", "workspace"]), got


def test_a_symlink_out_of_workspace_is_never_followed(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = wasm_shell(make_rest_shell)
    passwd = Path("/etc/passwd")
    before = hashlib.sha256(passwd.read_bytes()).hexdigest()
    make = (
        "import os, json\n"
        "made = []\n"
        "for name, target in (('abs', '/etc/passwd'), ('up', '../../../../../../../etc/passwd'),\n"
        "                     ('etc', '../../../../../../../etc')):\n"
        "    try:\n"
        "        os.symlink(target, name); made.append(name)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        "    open('up').read(); leak = True\n"
        "except OSError:\n"
        "    leak = False\n"
        "print(json.dumps({'made': made, 'leak': leak}))\n"
    )
    out = json.loads(execw(api, sh["id"], ["python", "-c", make])["stdout"])
    assert out["leak"] is False and "up" in out["made"], out
    listing = api.get(f"/v1/shells/{sh['id']}/files/list", params={"path": "/workspace"}).json()["entries"]
    up = next(e for e in listing if e["name"] == "up")
    assert up["kind"] == "symlink" and up["link_target"].endswith("etc/passwd")
    error_of(get(api, sh["id"], "/workspace/up"), 400, "invalid_path")
    r = api.put(f"/v1/shells/{sh['id']}/files", params={"path": "/workspace/up"}, content=b"pwned\n")
    assert r.status_code == 200  # replaces the link itself, never the target
    assert get(api, sh["id"], "/workspace/up").content == b"pwned\n"
    if "etc" in out["made"]:
        error_of(get(api, sh["id"], "/workspace/etc/passwd"), 400, "invalid_path")
        r = api.put(f"/v1/shells/{sh['id']}/files", params={"path": "/workspace/etc/x"}, content=b"no")
        error_of(r, 400, "invalid_path")
        error_of(
            api.post(
                f"/v1/shells/{sh['id']}/exec",
                json={"cmd": ["python", "-c", "print(open('passwd').read())"], "cwd": "/workspace/etc"},
            ),
            400,
            "invalid_path",
        )
        error_of(api.post(f"/v1/shells/{sh['id']}/exec", json={"cmd": ["etc/x.wasm"]}), 400, "invalid_path")
    assert hashlib.sha256(passwd.read_bytes()).hexdigest() == before
    assert not Path("/etc/x").exists()


def test_a_worker_that_dies_mid_run_is_a_typed_error_and_is_replaced(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = wasm_shell(make_rest_shell)
    lines: list[dict[str, Any]] = []
    body = {"cmd": ["python", "-c", "import time\nprint('up', flush=True)\nwhile True: pass"]}
    with api.stream("POST", f"/v1/shells/{sh['id']}/exec", json=body) as r:
        assert r.status_code == 200
        for raw in r.iter_lines():
            line = json.loads(raw)
            lines.append(line)
            if line["type"] == "started":
                os.kill(int(line["pid"]), 0)  # the worker running the program
            if line["type"] == "stdout":
                os.kill(int(lines[0]["pid"]), signal.SIGKILL)
    assert lines[-1]["type"] == "error" and lines[-1]["error"]["code"] == "runtime_failure", lines
    assert execw(api, sh["id"], ["python", "-c", "print(2)"])["stdout"] == "2\n"
