"""Every job of the guest agent (exec with stdin, files, kept processes, a terminal, and in a microvm
a fork that keeps a kept process) through the real server, in every isolation class this host runs:
the agent's modules (``guest/``) all reach the runtime each class starts it from."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx

from shells.sdk import CommandExit, CommandOutput, Shell

from .harness import ServerProcess
from .test_terminal import attached, last_message, screen_until


def test_exec_files_kept_processes_and_a_terminal_work_in_each_class(
    make_shell: Callable[..., Shell], runtime: str, server: ServerProcess
) -> None:
    shell = make_shell("python", runtime=runtime, idle_timeout_s=0)
    done = shell.commands.run("cat; echo $WHO", stdin="typed\n", env={"WHO": "agent"})
    assert (done.exit_code, done.stdout) == (0, "typed\nagent\n")

    shell.files.mkdir("/workspace/dir")
    assert shell.files.write("/workspace/dir/a.txt", "hello") == 5
    assert shell.files.read_text("/workspace/dir/a.txt") == "hello"
    assert [e.name for e in shell.files.list("/workspace/dir")] == ["a.txt"]
    shell.files.remove("/workspace/dir", recursive=True)
    assert not shell.files.exists("/workspace/dir")

    cat = shell.processes.start("cat; echo over", stdin=True, tag="kept")
    assert [(p.pid, p.tag) for p in shell.processes.list()] == [(cat.pid, "kept")]
    if runtime == "microvm":  # a fork's machine holds the kept process too
        (child,) = shell.fork(1)
        try:
            assert [p.tag for p in child.processes.list()] == ["kept"]
        finally:
            child.kill()
    with shell.processes.attach(cat.pid) as events:
        shell.processes.send_stdin(cat.pid, "late\n")
        shell.processes.close_stdin(cat.pid)
        seen = list(events)
    assert "".join(e.data for e in seen if isinstance(e, CommandOutput)) == "late\nover\n"
    assert isinstance(seen[-1], CommandExit) and seen[-1].exit_code == 0

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
        r = api.post(f"/v1/shells/{shell.id}/term", json={})
        assert r.status_code == 201, r.text
        cred = r.json()
    with attached(cred, cols=90, rows=20) as ws:
        ws.send(json.dumps({"type": "resize", "cols": 110, "rows": 33}))
        ws.send(b"stty size; exit 3\n")
        assert re.search(rb"33 110\r\n", screen_until(ws, rb"33 110\r\n"))
        message, _, _ = last_message(ws)
    assert message == {"type": "exit", "exit_code": 3, "signal": None}
