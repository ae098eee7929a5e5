"""The guest agent runs from the host's runtime, whatever the image holds: a template with no python3,
no libc and no dynamic loader still gets shells that run commands."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from shells.sdk import Shell, Shells

STRIP_TO_BUSYBOX = """
set -e
cd /
# Every program, library and loader of the image goes: /bin, /lib ... are links into /usr on Debian.
/tmp/busybox rm -rf /usr /bin /sbin /lib /lib32 /lib64 /libx32 /opt /var /home /root /srv
/tmp/busybox find /etc -mindepth 1 ! -name resolv.conf -exec /tmp/busybox rm -rf {} +
/tmp/busybox mkdir /bin
/tmp/busybox cp /tmp/busybox /bin/busybox
/bin/busybox --install -s /bin
"""


def test_a_template_without_python_or_libc_gets_working_shells(
    client: Shells, make_shell: Callable[..., Shell]
) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs a static busybox (busybox-static, scripts/install-system-deps.sh)")
    builder = make_shell("bash")
    builder.files.write("/tmp/busybox", Path(busybox).read_bytes(), mode=0o755)
    stripped = builder.commands.run(STRIP_TO_BUSYBOX)
    assert stripped.exit_code == 0, stripped.stderr
    name = f"bare-{uuid.uuid4().hex[:8]}:1"
    client.templates.save(builder.id, name)
    shell = None
    try:
        shell = client.create(None, template=name)
        check = shell.commands.run(
            "echo hi; ls /usr/bin/python3 /lib/x86_64-linux-gnu/libc.so.6 2>/dev/null; echo rc=$?;"
            " cat /proc/self/mountinfo"
        )
        assert check.exit_code == 0, check.stderr
        lines = check.stdout.splitlines()
        assert lines[:2] == ["hi", "rc=1"], check.stdout  # neither python3 nor a libc in the image
        runtime = [line.split() for line in lines if line.split()[4:5] == ["/.shells"]]
        assert len(runtime) == 1 and "ro" in runtime[0][5].split(","), check.stdout
        assert shell.files.read("/bin/busybox") == Path(busybox).read_bytes()
        # The runtime cannot be changed from inside, and the agent still refuses inspection.
        for attempt in ("touch /.shells/bin/x", "echo > /.shells/bin/python3", "cat /proc/1/maps"):
            refused = shell.commands.run(attempt)
            assert refused.exit_code != 0 and refused.stderr, (attempt, refused.stdout)
    finally:
        if shell is not None:
            shell.kill()
        client.templates.delete(name)
