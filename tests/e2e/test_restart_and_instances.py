"""A server crash loses no shell; two instances on one host never touch each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shells.settings import Settings
from shells.store.repository import Store

from .harness import ServerProcess, host_leaks, running_server


def test_kill_9_of_the_server_loses_no_running_shell(data_root: Path) -> None:
    with running_server(data_root / "crash", warm_pool=1) as srv:
        with srv.client() as c:
            a = c.create("python").id
            b = c.create("bash")
            c.get(a).files.write("/workspace/note.txt", "still here")
            b.stop()
        srv.kill9()
        srv.start()
        with srv.client() as c:
            shell_a = c.get(a)
            assert shell_a.info.state == "running"
            assert shell_a.files.read("/workspace/note.txt") == b"still here"
            assert shell_a.commands.run(["python3", "-c", "print(1+1)"]).stdout == "2\n"
            shell_b = c.get(b.id)
            assert shell_b.info.state == "stopped"
            shell_b.start()
            assert shell_b.info.state == "running"


def test_reconciliation_marks_vanished_shells_and_removes_orphans(data_root: Path) -> None:
    with running_server(data_root / "reconcile", warm_pool=0) as srv:
        with srv.client() as c:
            kept = c.create("bash").id
            vanished = c.create("bash").id
            half = c.create("bash").id
        srv.kill9()
        crun_root = Settings(data_dir=srv.data_dir).run_dir / "crun"
        # The host loses one shell's processes (as after a reboot) ...
        subprocess.run(["crun", "--root", str(crun_root), "delete", "--force", vanished], check=True)
        # ... and the store forgets another one, which makes it an orphan on the host.
        store = Store(f"sqlite:///{srv.data_dir / 'shells.db'}")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM events WHERE shell_id = ?", (half,))
            conn.exec_driver_sql("DELETE FROM shells WHERE id = ?", (half,))
        store.close()
        srv.start()
        with srv.client() as c:
            assert c.get(kept).info.state == "running"
            vanished_shell = c.get(vanished)
            assert vanished_shell.info.state == "stopped" and "gone" in vanished_shell.info.state_reason
            vanished_shell.start()
            assert vanished_shell.info.state == "running"
        assert not (srv.data_dir / "storage" / "pool" / "shells" / half).exists()
        running = subprocess.run(
            ["crun", "--root", str(crun_root), "list", "-q"], check=True, capture_output=True, text=True
        )
        assert half not in running.stdout


def test_two_instances_keep_to_their_own_shells_and_host_objects(
    server: ServerProcess, data_root: Path
) -> None:
    with running_server(data_root / "second", warm_pool=0) as other:
        with server.client() as c1, other.client() as c2:
            my_shell = c1.create("bash")
            mine, theirs = my_shell.id, c2.create("bash").id
            try:
                assert theirs not in {s.id for s in c1.list()}
                assert mine not in {s.id for s in c2.list()}
                inst1 = Settings(data_dir=server.data_dir).instance_id
                inst2 = Settings(data_dir=other.data_dir).instance_id
                assert inst1 != inst2
                assert Path(f"/sys/fs/cgroup/memory/shells-{inst1}/{mine}").exists()
                assert Path(f"/sys/fs/cgroup/memory/shells-{inst2}/{theirs}").exists()
                assert not Path(f"/sys/fs/cgroup/memory/shells-{inst1}/{theirs}").exists()
            finally:
                my_shell.kill()
        other_dir, other_instance = other.data_dir, Settings(data_dir=other.data_dir).instance_id
    assert host_leaks(other_dir, other_instance) == []
    with server.client() as c1:
        assert c1.info()["version"]
