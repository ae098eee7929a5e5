"""The E2B door, driven by E2B's own Python SDK from PyPI (unchanged, in its own virtualenv): the
scenarios are written once against ``AsyncSandbox`` and run both as written and turned sync (the
same substitution the project's own SDK uses), so both of the SDK's clients are exercised."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .e2b_sdk import run_e2b
from .harness import SHELLS, ServerProcess, free_port, running_server

SCOPES = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files"]
FLAVOURS = ["async", "sync"]


def as_flavour(script: str, flavour: str) -> str:
    if flavour == "async":
        return script
    for a, b in (
        ("AsyncSandbox", "Sandbox"),
        ("await ", ""),
        ("async def ", "def "),
        ("asyncio.run(main())", "main()"),
    ):
        script = script.replace(a, b)
    return script


class Door:
    def __init__(self, server: ServerProcess, port: int) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{port}"
        self.admin = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60
        )

    def key(self, tenant: str | None = None, scopes: list[str] | None = None) -> str:
        body: dict[str, Any] = {"scopes": scopes or SCOPES, "format": "e2b"}
        if tenant is not None:
            self.admin.post("/v1/tenants", json={"name": tenant}).raise_for_status()
            body |= {"tenant": tenant, "principal": "e2b-user"}
        r = self.admin.post("/v1/tokens", json=body)
        assert r.status_code == 201, r.text
        token = str(r.json()["token"])
        assert token.startswith("e2b_") and all(c in "0123456789abcdef" for c in token[4:])
        return token

    def env(self, key: str) -> dict[str, str]:
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url, "E2B_API_KEY": key}

    def run(self, script: str, flavour: str, key: str, **values: str) -> Any:
        header = "".join(f"{name} = {value!r}\n" for name, value in values.items())
        return run_e2b(header + as_flavour(script, flavour), self.env(key))


@pytest.fixture(scope="module")
def door(data_root: Path) -> Iterator[Door]:
    port = free_port()
    with running_server(data_root / "e2b", warm_pool=0, env={"SHELLS_E2B_PORT": str(port)}) as srv:
        d = Door(srv, port)
        built = d.admin.post(  # E2B's `base`: imported from the host cache, or built once (~90 s)
            "/v1/templates/build", params={"wait": "true"}, json={"builtin": "e2b-base:1"}, timeout=900
        )
        assert built.status_code in (200, 201) and built.json()["status"] == "ready", built.text
        yield d
        d.admin.close()


COMMANDS_AND_FILES = """
import asyncio, json
from e2b import AsyncSandbox, CommandExitException, FileNotFoundException, NotFoundException

async def main():
    out = {}
    sbx = await AsyncSandbox.create(metadata={"case": "commands"})
    out["id"] = sbx.sandbox_id
    try:
        r = await sbx.commands.run("echo hello; id -un; pwd; echo err >&2")
        out["run"] = [r.stdout, r.stderr, r.exit_code]
        out["root"] = (await sbx.commands.run("whoami", user="root")).stdout
        out["home"] = (await sbx.commands.run("mkdir ~/own && stat -c %U ~ ~/own && ls -A ~")).stdout
        tools = "command -v sudo && git --version && curl --version && node --version && python3 --version"
        out["tools"] = (await sbx.commands.run(tools)).exit_code
        try:
            await sbx.commands.run("echo bye; exit 3")
        except CommandExitException as e:
            out["exit3"] = [e.exit_code, e.stdout]
        cat = await sbx.commands.run("cat", background=True, stdin=True)
        out["listed"] = [p.pid for p in await sbx.commands.list()] == [cat.pid]
        await sbx.commands.send_stdin(cat.pid, "line one\\n")
        await sbx.commands.close_stdin(cat.pid)
        out["cat"] = (await cat.wait()).stdout
        sleeper = await sbx.commands.run("sleep 300", background=True)
        out["kill"] = await sbx.commands.kill(sleeper.pid)
        try:
            await sleeper.wait()
        except CommandExitException as e:
            out["killed_exit"] = e.exit_code
        out["after_kill"] = [p.pid for p in await sbx.commands.list()]
        slow = await sbx.commands.run("sleep 1; echo done", background=True)
        out["reattached"] = (await (await sbx.commands.connect(slow.pid)).wait()).stdout
        out["kill_unknown"] = await sbx.commands.kill(999999)
        try:
            await sbx.commands.connect(999999)
        except NotFoundException:
            out["connect_unknown"] = "NotFoundException"

        await sbx.files.write("notes/a.txt", "hi there")
        out["read"] = await sbx.files.read("notes/a.txt")
        owners = await sbx.commands.run("stat -c %U:%G /home/user/notes /home/user/notes/a.txt")
        out["owner"] = owners.stdout
        await sbx.files.write("/tmp/r.txt", "x", user="root")
        out["root_write_owner"] = (await sbx.commands.run("stat -c %U /tmp/r.txt")).stdout
        out["list"] = [e.name for e in await sbx.files.list("notes")]
        info = await sbx.files.get_info("notes/a.txt")
        out["info"] = [info.name, info.type.value, info.path, info.size, info.permissions]
        out["mkdir"] = [await sbx.files.make_dir("d/e"), await sbx.files.make_dir("d/e")]
        moved = await sbx.files.rename("notes/a.txt", "notes/b.txt")
        old, new = await sbx.files.exists("notes/a.txt"), await sbx.files.exists("notes/b.txt")
        out["moved"] = [moved.path, old, new]
        await sbx.files.remove("notes")
        out["removed"] = await sbx.files.exists("notes")
        try:
            await sbx.files.read("notes/b.txt")
        except FileNotFoundException:
            out["read_missing"] = "FileNotFoundException"
        await sbx.files.write_files([
            {"path": "many/one.txt", "data": "1"},
            {"path": "/home/user/many/two.txt", "data": b"2"},
        ])
        out["many"] = sorted(e.name for e in await sbx.files.list("many"))
        await sbx.files.write("tagged.txt", "x", metadata={"Owner": "alice", "stage": "draft"})
        out["metadata"] = [
            (await sbx.files.get_info("tagged.txt")).metadata,
            (await sbx.files.get_info("many/one.txt")).metadata,
            [e.metadata for e in await sbx.files.list("/home/user") if e.name == "tagged.txt"],
        ]
        out["running"] = await sbx.is_running()
    finally:
        out["killed"] = await sbx.kill()
    out["running_after_kill"] = await sbx.is_running()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_commands_and_files_through_the_e2b_sdk(door: Door, flavour: str) -> None:
    out = door.run(COMMANDS_AND_FILES, flavour, door.key())
    assert out["run"] == ["hello\nuser\n/home/user\n", "err\n", 0]
    assert out["root"] == "root\n" and out["tools"] == 0
    owner, own, *dotfiles = out["home"].split()
    assert [owner, own] == ["user", "user"] and ".bashrc" in dotfiles  # the user's home, as on E2B
    assert out["exit3"] == [3, "bye\n"]
    assert out["listed"] is True
    assert out["cat"] == "line one\n"
    assert out["kill"] is True and out["killed_exit"] == -1 and out["after_kill"] == []
    assert out["reattached"] == "done\n"
    assert out["kill_unknown"] is False and out["connect_unknown"] == "NotFoundException"
    assert out["read"] == "hi there"
    assert out["owner"] == "user:user\nuser:user\n"
    assert out["root_write_owner"] == "root\n"
    assert out["list"] == ["a.txt"]
    assert out["info"] == ["a.txt", "file", "/home/user/notes/a.txt", 8, "-rw-r--r--"]
    assert out["mkdir"] == [True, False]
    assert out["moved"] == ["/home/user/notes/b.txt", False, True]
    assert out["removed"] is False and out["read_missing"] == "FileNotFoundException"
    assert out["many"] == ["one.txt", "two.txt"]
    tagged = {"owner": "alice", "stage": "draft"}
    assert out["metadata"] == [tagged, None, [tagged]]
    assert out["running"] is True and out["killed"] is True and out["running_after_kill"] is False
    events = door.admin.get("/v1/audit", params={"door": "e2b", "shell": f"sh_{out['id']}"}).json()
    actions = {e["action"] for e in events["events"]}
    assert {"create", "process", "signal", "write", "rename", "delete"} <= actions, actions


LIFECYCLE = """
import asyncio, json, time
from e2b import AsyncSandbox, SandboxQuery, SandboxState, SandboxNotFoundException

async def main():
    out = {}
    a = await AsyncSandbox.create(metadata={"suite": SUITE, "n": "1"})
    b = await AsyncSandbox.create(metadata={"suite": SUITE, "n": "2"})
    try:
        pages = AsyncSandbox.list(query=SandboxQuery(metadata={"suite": SUITE}), limit=1)
        ids = []
        while pages.has_next:
            ids += [s.sandbox_id for s in await pages.next_items()]
        out["listed"] = sorted(ids) == sorted([a.sandbox_id, b.sandbox_id])
        one = await AsyncSandbox.list(query=SandboxQuery(metadata={"suite": SUITE, "n": "2"})).next_items()
        out["filtered"] = [s.sandbox_id for s in one] == [b.sandbox_id]
        info = await a.get_info()
        out["info"] = [info.template_id, info.state.value, info.metadata]
        await a.files.write("kept.txt", "still here")
        out["paused"] = await a.pause()
        out["paused_again"] = await a.pause()
        out["paused_running"] = await a.is_running()
        paused = SandboxQuery(metadata={"suite": SUITE}, state=[SandboxState.PAUSED])
        listed = await AsyncSandbox.list(query=paused).next_items()
        out["paused_listed"] = [s.sandbox_id for s in listed] == [a.sandbox_id]
        again = await AsyncSandbox.connect(a.sandbox_id)
        out["resumed"] = await again.files.read("kept.txt")
        snap = await again.create_snapshot(name="kept")
        listed = await AsyncSandbox.list_snapshots(sandbox_id=a.sandbox_id).next_items()
        copy = await AsyncSandbox.create(template=snap.snapshot_id)
        out["snapshot"] = [
            snap.names, [s.snapshot_id for s in listed] == [snap.snapshot_id],
            await copy.files.read("kept.txt"), (await copy.get_info()).template_id == snap.snapshot_id,
        ]  # fmt: skip
        await copy.kill()
        other = await AsyncSandbox.create(template="python:1")
        out["other_template"] = (await other.commands.run("id -un; pwd")).stdout
        await other.kill()
        await b.set_timeout(1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "expired" not in out:
            try:
                await AsyncSandbox.get_info(b.sandbox_id)
                time.sleep(0.2)
            except SandboxNotFoundException:
                out["expired"] = True
    finally:
        out["kill"] = [await a.kill(), await b.kill(), await AsyncSandbox.kill(b.sandbox_id)]
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_lifecycle_and_listing_through_the_e2b_sdk(door: Door, flavour: str) -> None:
    out = door.run(LIFECYCLE, flavour, door.key(), SUITE=secrets.token_hex(4))
    assert out["listed"] is True and out["filtered"] is True
    assert out["info"][:2] == ["base", "running"] and out["info"][2]["n"] == "1"
    assert out["paused"] is True and out["paused_again"] is False and out["paused_running"] is False
    assert out["paused_listed"] is True
    assert out["resumed"] == "still here"
    assert out["snapshot"] == [["kept"], True, "still here", True]
    assert out["other_template"] == "user\n/home/user\n"
    assert out["expired"] is True
    assert out["kill"] == [True, False, False]


BAD_INPUT = """
import asyncio, json
from e2b import AsyncSandbox

async def main():
    out = {}
    async def outcome(make):
        try:
            await make()
        except Exception as e:
            return type(e).__name__
        return "no error"
    out["template"] = await outcome(lambda: AsyncSandbox.create(template="no-such-template"))
    out["bad_key"] = await outcome(lambda: AsyncSandbox.create(api_key="e2b_" + "0" * 40))
    out["foreign"] = await outcome(lambda: AsyncSandbox.connect(FOREIGN, api_key=OTHER_KEY))
    out["foreign_info"] = await outcome(lambda: AsyncSandbox.get_info(FOREIGN, api_key=OTHER_KEY))
    out["foreign_kill"] = await AsyncSandbox.kill(FOREIGN, api_key=OTHER_KEY)
    out["no_such_id"] = await outcome(lambda: AsyncSandbox.get_info("abcdefghij0123456789"))
    out["malformed_id"] = await outcome(lambda: AsyncSandbox.get_info("no-such_id"))
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bad_input_raises_the_sdks_own_exceptions(door: Door, flavour: str) -> None:
    owner_key = door.key()
    env = door.env(owner_key)
    mine = run_e2b(
        "import json\nfrom e2b import Sandbox\nprint(json.dumps(Sandbox.create().sandbox_id))", env
    )
    try:
        other = door.key(tenant=f"e2b-{secrets.token_hex(3)}")
        out = door.run(BAD_INPUT, flavour, owner_key, FOREIGN=mine, OTHER_KEY=other)
    finally:
        httpx.delete(f"{door.url}/sandboxes/{mine}", headers={"X-API-KEY": owner_key}, timeout=60)
    assert out["template"] == "SandboxException"  # what the SDK raises for a create's 404
    assert out["bad_key"] == "AuthenticationException"
    assert out["foreign"] == "SandboxNotFoundException"
    assert out["foreign_info"] == "SandboxNotFoundException"
    assert out["foreign_kill"] is False
    assert out["no_such_id"] == out["malformed_id"] == "SandboxNotFoundException"


def test_the_door_answers_bad_requests_in_e2b_shapes_never_500(door: Door) -> None:
    key = door.key()
    api = httpx.Client(base_url=door.url, headers={"X-API-KEY": key}, timeout=60)
    with api:
        assert api.post("/sandboxes", content=b"{not json").json()["code"] == 400
        assert api.post("/sandboxes", content=b" " * (2 << 20)).json()["code"] == 413
        for body in ({}, {"templateID": 7}, {"templateID": "base", "timeout": -1},
                     {"templateID": "base", "metadata": {"a": 1}},
                     {"templateID": "base", "allow_internet_access": "yes"}):  # fmt: skip
            r = api.post("/sandboxes", json=body)
            assert r.status_code == 400 and r.json()["code"] == 400 and r.json()["message"], body
        assert api.get("/v2/sandboxes", params={"limit": "x"}).status_code == 400
        assert api.get("/v2/sandboxes", params={"state": "gone"}).status_code == 400
        assert api.get("/v2/sandboxes").status_code == 200
        trail = door.admin.get("/v1/audit", params={"door": "e2b", "action": "e2b.list"}).json()["events"]
        assert {e["outcome"] for e in trail} >= {"ok", "invalid_request"}, trail
        r = httpx.get(f"{door.url}/v2/sandboxes", timeout=10)
        assert r.status_code == 401 and r.json()["code"] == 401
        sealed = api.post("/sandboxes", json={"templateID": "base", "allow_internet_access": False}).json()
        listed = {"templateID": "base", "network": {"allowOut": ["example.org"], "denyOut": ["0.0.0.0/0"]}}
        limited = api.post("/sandboxes", json=listed).json()
        try:
            policies = [
                door.admin.get(f"/v1/shells/sh_{s['sandboxID']}").json()["network"] for s in (sealed, limited)
            ]
            assert policies == [
                {"mode": "localhost", "allow": []},
                {"mode": "internet", "allow": ["example.org"]},
            ]
            update = {"allowOut": ["example.com"], "denyOut": ["0.0.0.0/0"]}
            assert api.put(f"/sandboxes/{sealed['sandboxID']}/network", json=update).status_code == 204
            policy = door.admin.get(f"/v1/shells/sh_{sealed['sandboxID']}").json()["network"]
            assert policy == {"mode": "internet", "allow": ["example.com"]}
            r = api.put(f"/sandboxes/{sealed['sandboxID']}/network", json={"denyOut": ["8.8.8.8/32"]})
            assert r.status_code == 400 and "allowOut" in r.json()["message"]
        finally:
            for s in (sealed, limited):
                api.delete(f"/sandboxes/{s['sandboxID']}")
        created = api.post("/sandboxes", json={"templateID": "base"})
        assert created.status_code == 201, created.text
        sandbox = created.json()
        assert "_" not in sandbox["sandboxID"] and "-" not in sandbox["sandboxID"]
        try:
            envd = {"E2b-Sandbox-Id": sandbox["sandboxID"], "E2b-Sandbox-Port": "49983"}
            token = {"X-Access-Token": sandbox["envdAccessToken"]}
            forged = sandbox["envdAccessToken"].rsplit(".", 1)[0] + ".00"
            assert httpx.get(f"{door.url}/health", headers=envd | token).status_code == 204
            r = httpx.get(f"{door.url}/health", headers=envd | {"X-Access-Token": forged})
            assert r.status_code == 401
            stat = f"{door.url}/filesystem.Filesystem/Stat"
            r = httpx.post(stat, headers=envd | {"X-Access-Token": forged}, json={"path": "/etc"})
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
            r = httpx.post(stat, headers=envd | token, json={"path": "/etc/../x"})
            assert r.status_code == 400 and r.json()["code"] == "invalid_argument"
            r = httpx.get(f"{door.url}/files", headers=envd | token, params={"path": "/no/such"})
            assert r.status_code == 404 and r.json()["code"] == 404
            r = httpx.post(f"{door.url}/files", headers=envd | token | {"Content-Type": "text/plain"})
            assert r.status_code == 400
        finally:
            api.delete(f"/sandboxes/{sandbox['sandboxID']}")


MICROVM = """
import asyncio, json
from e2b import AsyncSandbox

async def main():
    out = {}
    sbx = await AsyncSandbox.create(metadata={"shells.runtime": "microvm"})
    try:
        out["run"] = (await sbx.commands.run("id -un; echo $HOME; sudo -n id -un")).stdout
        sleeper = await sbx.commands.run("sleep 300", background=True)
        await sbx.files.write("f.txt", "in the vm")
        out["paused"] = [await sbx.pause(), await sbx.is_running()]
        again = await AsyncSandbox.connect(sbx.sandbox_id)
        pids = [p.pid for p in await again.commands.list()]
        out["resumed"] = [await again.files.read("f.txt"), pids == [sleeper.pid]]
        out["kill"] = await again.commands.kill(sleeper.pid)
        children = await again.fork(count=2)
        out["forks"] = [await c.files.read("f.txt") for c in children]
        for child in children:
            await child.kill()
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_microvm_sandbox_pauses_with_its_processes_and_resumes_on_connect(door: Door, flavour: str) -> None:
    runtimes = door.admin.get("/v1/info").json()["runtimes"]
    if "microvm" not in runtimes:
        pytest.skip("no microvm class on this host (QEMU missing)")
    out = door.run(MICROVM, flavour, door.key())
    assert out["run"] == "user\n/home/user\nroot\n"  # sudo works in a VM (containers are no_new_privs)
    assert out["paused"] == [True, False]
    assert out["resumed"] == ["in the vm", True]
    assert out["kill"] is True
    assert out["forks"] == ["in the vm", "in the vm"]


WATCH = {
    "sync": """
import json, time
from e2b import Sandbox

sbx = Sandbox.create()
try:
    sbx.files.make_dir("w")
    handle = sbx.files.watch_dir("w", recursive=True)
    sbx.files.write("w/a.txt", "1")
    sbx.files.make_dir("w/sub")
    time.sleep(0.3)
    sbx.files.write("w/sub/b.txt", "2")
    sbx.files.rename("w/a.txt", "w/c.txt")
    sbx.files.remove("w/c.txt")
    time.sleep(0.5)
    events = [[e.name, e.type.name] for e in handle.get_new_events()]
    handle.stop()
    try:
        sbx.files.watch_dir("nope")
        missing = "no error"
    except Exception as e:
        missing = type(e).__name__
finally:
    sbx.kill()
print(json.dumps({"events": events, "missing": missing}))
""",
    "async": """
import asyncio, json
from e2b import AsyncSandbox

async def main():
    sbx = await AsyncSandbox.create()
    events = []
    try:
        await sbx.files.make_dir("w")
        handle = await sbx.files.watch_dir(
            "w", recursive=True, on_event=lambda e: events.append([e.name, e.type.name])
        )
        await sbx.files.write("w/a.txt", "1")
        await sbx.files.make_dir("w/sub")
        await asyncio.sleep(0.3)
        await sbx.files.write("w/sub/b.txt", "2")
        await sbx.files.rename("w/a.txt", "w/c.txt")
        await sbx.files.remove("w/c.txt")
        await asyncio.sleep(0.5)
        await handle.stop()
        try:
            await sbx.files.watch_dir("nope", on_event=print)
            missing = "no error"
        except Exception as e:
            missing = type(e).__name__
    finally:
        await sbx.kill()
    print(json.dumps({"events": events, "missing": missing}))

asyncio.run(main())
""",
}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_directory_watch_reports_changes_below_it(door: Door, flavour: str) -> None:
    out = run_e2b(WATCH[flavour], door.env(door.key()))
    changes = [tuple(e) for e in out["events"]]
    expected = [
        ("a.txt", "CREATE"),
        ("a.txt", "WRITE"),
        ("sub", "CREATE"),
        ("sub/b.txt", "CREATE"),
        ("sub/b.txt", "WRITE"),
        ("a.txt", "RENAME"),
        ("c.txt", "CREATE"),
        ("c.txt", "REMOVE"),
    ]
    for change in expected:
        assert change in changes, (change, changes)
    assert changes.index(("a.txt", "RENAME")) < changes.index(("c.txt", "REMOVE"))
    assert not any(".shells-upload" in name for name, _ in changes)
    assert out["missing"] == "FileNotFoundException"


PTY = {
    "sync": """
import json, time
from e2b import Sandbox, PtySize

sbx = Sandbox.create()
try:
    out = []
    handle = sbx.pty.create(PtySize(rows=24, cols=80))
    sbx.pty.send_stdin(handle.pid, b"stty size; id -un\\n")
    time.sleep(0.5)
    sbx.pty.resize(handle.pid, PtySize(rows=30, cols=100))
    sbx.pty.send_stdin(handle.pid, b"stty size; exit 4\\n")
    try:
        handle.wait(on_pty=out.append)
        code = 0
    except Exception as e:
        code = e.exit_code
finally:
    sbx.kill()
print(json.dumps({"text": b"".join(out).decode(errors="replace"), "exit": code}))
""",
    "async": """
import asyncio, json
from e2b import AsyncSandbox, PtySize

async def main():
    sbx = await AsyncSandbox.create()
    out = []
    try:
        handle = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=out.append)
        await sbx.pty.send_stdin(handle.pid, b"stty size; id -un\\n")
        await asyncio.sleep(0.5)
        await sbx.pty.resize(handle.pid, PtySize(rows=30, cols=100))
        await sbx.pty.send_stdin(handle.pid, b"stty size; exit 4\\n")
        try:
            await handle.wait()
            code = 0
        except Exception as e:
            code = e.exit_code
    finally:
        await sbx.kill()
    print(json.dumps({"text": b"".join(out).decode(errors="replace"), "exit": code}))

asyncio.run(main())
""",
}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_pty_runs_an_interactive_shell_that_resizes(door: Door, flavour: str) -> None:
    out = run_e2b(PTY[flavour], door.env(door.key()))
    text = out["text"].replace("\r", "")
    assert "24 80\nuser\n" in text and "30 100\n" in text, text
    assert out["exit"] == 4


KEY_LIFE = """
import json
from e2b import Sandbox

try:
    Sandbox.list().next_items()
    print(json.dumps("ok"))
except Exception as e:
    print(json.dumps(type(e).__name__))
"""


def test_a_key_minted_by_the_cli_works_until_revoked(door: Door) -> None:
    env = {**os.environ, "SHELLS_BASE_URL": door.server.url, "SHELLS_API_TOKEN": door.server.token}
    done = subprocess.run(
        [*SHELLS, "admin", "token", "create", "--scopes", "shells.read", "--e2b", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    minted = json.loads(done.stdout)
    assert minted["token"].startswith("e2b_")
    assert run_e2b(KEY_LIFE, door.env(minted["token"])) == "ok"
    door.admin.delete(f"/v1/tokens/{minted['id']}").raise_for_status()
    assert run_e2b(KEY_LIFE, door.env(minted["token"])) == "AuthenticationException"
