"""``sudo`` in container shells (guest/sudo.py, guest/sudo_server.py), as E2B code uses it on `base`:
passwordless for the user the sudoers name, refused for anyone else, and — tested by attack — worth
exactly the shell's own root: the same user namespace, capabilities, seccomp and ``no_new_privs`` as
a command the host runs as root, and no more."""

from __future__ import annotations

from .test_e2b_door import Door, door  # noqa: F401  (door: the module's own server)

SUDO = """
import asyncio, json
from e2b import AsyncSandbox, CommandExitException

async def run(sbx, cmd, user="user"):
    try:
        r = await sbx.commands.run(cmd, user=user)
        return [r.exit_code, r.stdout, r.stderr]
    except CommandExitException as e:
        return [e.exit_code, e.stdout, e.stderr]

FIELDS = "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):"
PROFILE = f"grep -E '{FIELDS}' /proc/self/status; cat /proc/self/uid_map"

async def main():
    out = {}
    sbx = await AsyncSandbox.create()
    try:
        out["shim"] = await run(sbx, "command -v sudo; sed -n 2p /usr/local/bin/sudo")
        out["id"] = await run(sbx, "sudo id -u; sudo -u nobody id -un; sudo -E sh -c 'echo $SUDO_USER'")
        out["stdin"] = await run(sbx, "printf 'through\\\\n' | sudo cat")
        out["exit"] = await run(sbx, "sudo sh -c 'exit 7'")
        out["cwd"] = await run(sbx, "cd /tmp && sudo pwd && sudo -i pwd")
        tee = "echo x | sudo tee /etc/owned-by-root >/dev/null; stat -c %U /etc/owned-by-root"
        out["write"] = await run(sbx, tee)
        out["missing"] = await run(sbx, "sudo /no/such/program")
        interrupt = "timeout -s INT 1 sudo sleep 30; echo $?; pgrep -x sleep || echo none"
        out["interrupt"] = await run(sbx, interrupt)
        sleeper = await sbx.commands.run("sudo sleep 300", background=True, user="user")
        await asyncio.sleep(0.5)
        await sbx.commands.kill(sleeper.pid)
        await asyncio.sleep(0.5)
        out["killed"] = await run(sbx, "pgrep -x sleep || echo none")

        # nothing beyond the shell's own root: the same profile as the host's own root command
        out["sudo_profile"] = await run(sbx, "sudo sh -c \\"" + PROFILE + "\\"")
        out["root_profile"] = await run(sbx, PROFILE, user="root")
        out["mount"] = await run(sbx, "sudo mount -t tmpfs t /mnt")
        out["agent_env"] = await run(sbx, "sudo cat /proc/1/environ")
        out["sysctl"] = await run(sbx, "sudo sh -c 'echo 1 > /proc/sys/kernel/sysrq'")
        setuid = "sudo cp /bin/sh /tmp/rootsh && sudo chmod u+s /tmp/rootsh && /tmp/rootsh -p -c 'id -u'"
        out["setuid_bit"] = await run(sbx, setuid)

        # a user the sudoers do not name is refused, and cannot name itself
        await run(sbx, "useradd -m guest", user="root")
        out["guest"] = await run(sbx, "sudo id -u", user="guest")
        grant = "echo 'guest ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/guest"
        out["guest_sudoers"] = await run(sbx, grant, user="guest")
        link = f"{grant.partition('>')[0]} > /tmp/g && chmod 666 /tmp/g && ln -s /tmp/g /etc/sudoers.d/guest"
        await run(sbx, link, user="root")
        out["guest_symlink"] = await run(sbx, "sudo id -u", user="guest")
        narrow = "rm /etc/sudoers.d/guest && echo 'guest ALL=(ALL) /usr/bin/id' > /etc/sudoers.d/guest"
        await run(sbx, narrow, user="root")
        out["guest_narrow"] = await run(sbx, "sudo id -u", user="guest")
        await run(sbx, "echo 'guest ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/guest", user="root")
        out["guest_granted"] = await run(sbx, "sudo id -u", user="guest")
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_sudo_in_a_container_shell_is_the_shells_own_root_and_no_more(door: Door) -> None:  # noqa: F811
    out = door.run(SUDO, "async", door.key())
    assert out["shim"][0] == 0, out["shim"]
    assert out["shim"][1].startswith("/usr/local/bin/sudo\n# shells-sudo"), out["shim"]
    assert out["id"] == [0, "0\nnobody\nuser\n", ""]
    assert out["stdin"][:2] == [0, "through\n"]
    assert out["exit"][0] == 7
    assert out["cwd"][:2] == [0, "/tmp\n/root\n"]
    assert out["write"][:2] == [0, "root\n"]
    assert out["missing"][0] == 1 and "No such file" in out["missing"][2]
    assert out["interrupt"][1] == "124\nnone\n", out["interrupt"]
    assert out["killed"][1] == "none\n"

    assert out["sudo_profile"][0] == 0 and out["sudo_profile"][1] == out["root_profile"][1]
    profile = out["sudo_profile"][1]
    assert "NoNewPrivs:\t1" in profile and "Seccomp:\t2" in profile
    assert "4294967295" not in profile  # a user namespace's map, never the host's whole range
    assert out["mount"][0] != 0
    assert out["agent_env"][0] != 0
    assert out["sysctl"][0] != 0
    assert out["setuid_bit"][1] != "0\n"  # nosuid and no_new_privs: a setuid root shell stays the user

    assert out["guest"][0] == 1 and "may not use sudo" in out["guest"][2]
    assert out["guest_sudoers"][0] != 0
    assert out["guest_symlink"][0] == 1  # a link (to a file anyone may write) is not a sudoers file
    assert out["guest_narrow"][0] == 1  # only "everything, without a password" is understood
    assert out["guest_granted"][:2] == [0, "0\n"]
