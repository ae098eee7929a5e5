"""The use cases through the REST API and the async SDK, on the fake node, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from shells.domain.errors import (
    InvalidRequest,
    InvalidState,
    PermissionDenied,
    ShellNotFound,
    TemplateNotBuilt,
)
from shells.sdk import AsyncShells
from shells.sdk.models import BuildEvent

from ..support.inprocess import Instance, serving
from ..support.waiting import eventually

pytestmark = pytest.mark.anyio
MEMBER = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files"]


async def test_a_shell_is_created_runs_a_command_and_is_deleted(
    admin: AsyncShells, instance: Instance
) -> None:
    shell = await admin.create("python", labels={"team": "a"})
    assert shell.info.state == "running" and shell.info.template == "python:1"
    ran = await shell.commands.run("echo out; echo err >&2; exit 3")
    assert (ran.stdout, ran.stderr, ran.exit_code) == ("out\n", "err\n", 3)
    listed = await admin.list(label="team=a")
    assert [s.id for s in listed] == [shell.id]
    assert await shell.kill()
    assert shell.id not in {s.id for s in await admin.list()}
    gone = instance.node.shell_dir(shell.id)
    await eventually(lambda: not gone.exists(), what="reclaiming the deleted shell's directory")


async def test_files_are_written_read_listed_and_removed(admin: AsyncShells) -> None:
    shell = await admin.create("python")
    await shell.files.mkdir("/workspace/src")
    assert await shell.files.write("/workspace/src/main.py", "print(42)\n") == 10
    assert await shell.files.read_text("/workspace/src/main.py") == "print(42)\n"
    assert [e.name for e in await shell.files.list("/workspace/src")] == ["main.py"]
    ran = await shell.commands.run("cat src/main.py")
    assert ran.stdout == "print(42)\n"  # the command sees what the files API wrote
    await shell.files.remove("/workspace/src", recursive=True)
    assert not await shell.files.exists("/workspace/src")
    with pytest.raises(InvalidRequest):
        await shell.files.read("/workspace/../etc/passwd")


async def test_actions_move_the_shell_through_its_states(admin: AsyncShells) -> None:
    shell = await admin.create("python")
    await shell.files.write("/workspace/keep.txt", "kept")
    await shell.stop()
    assert shell.info.state == "stopped"
    with pytest.raises(InvalidState):
        await shell.commands.run("true")
    await shell.start()
    await shell.restart()
    snap = await shell.snapshot("before-wipe")
    await shell.wipe_state()
    assert not await shell.files.exists("/workspace/keep.txt")
    restored = await admin.create("python", snapshot=snap.id)
    assert await restored.files.read_text("/workspace/keep.txt") == "kept"
    await restored.commands.run("true")
    assert "exit 0" in await restored.logs()


async def test_pause_resume_and_fork_carry_the_shell_state(admin: AsyncShells) -> None:
    shell = await admin.create("python")
    await shell.files.write("/workspace/state.txt", "parent")
    await shell.pause()
    assert shell.info.state == "paused"
    children = await shell.fork(2)
    assert len(children) == 2 and {c.info.state for c in children} == {"running"}
    await children[0].files.write("/workspace/state.txt", "child")
    assert await children[1].files.read_text("/workspace/state.txt") == "parent"  # independent copies
    await shell.resume()
    assert (await shell.refresh()).state == "running"
    assert await shell.files.read_text("/workspace/state.txt") == "parent"


async def test_a_command_in_a_paused_shell_resumes_it_first(admin: AsyncShells) -> None:
    shell = await admin.create("python")
    await shell.pause()
    ran = await shell.commands.run("echo awake")
    assert ran.stdout == "awake\n"
    assert (await shell.refresh()).state == "running"
    assert "resume" in [e.action for e in await shell.events()]


async def test_another_tenants_shell_is_not_found_and_a_missing_scope_is_refused(
    admin: AsyncShells, instance: Instance
) -> None:
    theirs = await admin.create("python")
    await admin.tenants.create("acme")
    member = await admin.tokens.create(MEMBER, tenant="acme", principal="ana")
    reader = await admin.tokens.create(["shells.read"], tenant="acme", principal="rita")
    async with instance.client(member.token) as ana, instance.client(reader.token) as rita:
        with pytest.raises(ShellNotFound):
            await ana.get(theirs.id)
        mine = await ana.create("python")
        assert {s.id for s in await ana.list()} == {mine.id}
        with pytest.raises(PermissionDenied) as refused:
            await rita.create("python")
        assert refused.value.details == {"scope": "shells.create"}
        with pytest.raises(ShellNotFound):  # same tenant, no grant: as if it did not exist
            await rita.get(mine.id)
        await mine.grants.add("rita", "viewer")
        seen = await rita.get(mine.id)
        with pytest.raises(PermissionDenied):
            await seen.commands.run("true")  # a viewer's token without shells.exec


async def test_a_preset_not_built_is_refused_at_create_then_built_with_progress(
    admin: AsyncShells, instance: Instance
) -> None:
    with pytest.raises(TemplateNotBuilt) as refused:
        await admin.create("node")
    assert refused.value.details["template"] == "node:1"
    events: list[BuildEvent] = []
    built = await admin.templates.build(builtin="node:1", on_event=events.append)
    assert built.name == "node:1" and instance.node.builds == ["node:1"]
    assert any("node:1" in str(e) for e in events)
    assert (await admin.create("node")).info.template == "node:1"


async def test_bad_input_is_a_typed_400_naming_the_field(instance: Instance) -> None:
    async with instance.http() as http:
        answer = await http.post("/v1/shells", json={"language": "cobol"})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "language" in answer.json()["error"]["message"]
        assert (await http.get("/v1/shells")).json()["shells"] == []  # nothing half-created


async def test_the_background_loops_run_while_serving_and_stop_with_the_server(tmp_path: Path) -> None:
    async with serving(tmp_path, warm_pool_size=1) as running:
        loops = running.control.ctx.background
        await eventually(
            lambda: running.control.ctx.store.list_shells(None, pooled=True), what="a pool shell"
        )
        assert {"the idle sweep", "the budget check", "reading the drop counters"} <= set(loops.names())
    assert loops.names() == []
