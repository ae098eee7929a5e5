# Generated from tests/e2e/test_sdk_async.py by scripts/unasync.py; edit that file and run the script.
"""The SDK against a real server, method by method.

Written once for ``Shells``; ``scripts/unasync.py`` turns this file into ``test_sdk_sync.py``,
which runs the same tests through ``Shells``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from shells import Shell, Shells
from shells.sdk import (
    ActionNotSupported,
    AuthError,
    BuildDone,
    BuildEvent,
    BuildStep,
    CommandExit,
    CommandNotFound,
    CommandOutput,
    CommandStarted,
    Conflict,
    CredentialRevoked,
    FileNotFound,
    GrantNotFound,
    InvalidRequest,
    InvalidState,
    InvalidTemplateSpec,
    NetworkInUse,
    NetworkNotFound,
    NotFound,
    PermissionDenied,
    PortNotExposed,
    RateLimited,
    RetryPolicy,
    ShellNotFound,
    TemplateNotFound,
    Timeout,
    Unauthenticated,
    Unavailable,
)

from .harness import ServerProcess, free_port

NO_WAIT = RetryPolicy(max_retries=3, backoff_s=0.0)
BIG_FILE_BYTES = 150 * 2**20
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[Shells]:
    with Shells(server.url, server.token) as client:
        yield client


@pytest.fixture
def box(sdk: Shells) -> Iterator[Shell]:
    with sdk.create("python") as shell:
        yield shell


# creating, finding, deleting --------------------------------------------------------------------
def test_create_returns_a_running_shell_that_the_block_deletes(sdk: Shells) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    with sdk.create("python", name=name, env={"A": "1"}, labels={"suite": "sdk"}) as shell:
        assert shell.info.state == "running" and shell.info.name == name
        assert (shell.info.language, shell.info.runtime, shell.info.network.mode) == (
            "python",
            "container",
            "sealed",
        )
        assert shell.info.labels == {"suite": "sdk"} and shell.info.created_at is not None
        result = shell.commands.run("echo $A; echo err >&2; exit 3")
        assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("1\n", "err\n", 3, False)
    with pytest.raises(ShellNotFound):
        sdk.get(shell.id)


def test_shell_create_makes_and_closes_a_client_of_its_own(server: ServerProcess, sdk: Shells) -> None:
    with Shell.create("bash", base_url=server.url, token=server.token) as shell:
        assert (shell.commands.run("echo hi")).stdout == "hi\n"
    with pytest.raises(ShellNotFound):
        sdk.get(shell.id)
    with pytest.raises(RuntimeError):  # the shell's own client was closed with it
        shell.refresh()


def test_get_list_and_filters(sdk: Shells) -> None:
    tag = uuid.uuid4().hex[:8]
    with sdk.create("bash", labels={"t": tag}) as a, sdk.create("bash", labels={"t": tag}):
        assert (sdk.get(a.id)).info.id == a.id
        mine = sdk.list(label=f"t={tag}")
        assert len(mine) == 2 and a.id in {s.id for s in mine}
        assert a.id in {s.id for s in sdk.list(state="running", runtime="container")}
        assert a.id not in {s.id for s in sdk.list(state="stopped")}
        assert sdk.list(label=f"t={tag}-other") == []
        with pytest.raises(InvalidRequest, match="running"):
            sdk.list(state="sleeping")
    info = sdk.info()
    assert "container" in info["runtimes"] and "python" in info["languages"]


def test_the_runtime_matrix_and_a_shells_runtime_details(sdk: Shells, box: Shell) -> None:
    offers = {(o.language, o.runtime): o for o in sdk.runtimes()}
    assert offers[("python", "container")].available and offers[("python", "container")].version
    assert len(offers) == 15 and all(o.available or o.notes for o in offers.values())
    assert box.info.runtime_details["oci_runtime"].startswith("crun ")
    assert box.info.idle_timeout_s is None


def test_create_sandbox_and_run_command_map_createos_code(sdk: Shells, box: Shell) -> None:
    sandbox = sdk.create_sandbox(shape="s-1vcpu-512mb", rootfs=box.info.template)
    try:
        assert (sandbox.info.shape, sandbox.info.template) == ("s-1vcpu-512mb", box.info.template)
        response = sandbox.run_command("python3", ["-c", "print('a b')", "ignored"])
        assert response.result.stdout == "a b\n" and response.result.exit_code == 0
    finally:
        assert sandbox.destroy() is True
    with pytest.raises(ShellNotFound):
        sdk.get(sandbox.id)
    assert sandbox.destroy() is False


# commands ---------------------------------------------------------------------------------------
def test_commands_take_argv_args_env_cwd_stdin_and_a_timeout(box: Shell) -> None:
    assert (box.commands.run("printf", ["%s|", "a b", "$HOME"])).stdout == "a b|$HOME|"
    assert (box.commands.run(["printf", "%s|", "c d"])).stdout == "c d|"
    out = box.commands.run('echo "$X"; pwd; cat', env={"X": "y"}, cwd="/tmp", stdin="in")
    assert out.stdout == "y\n/tmp\nin"
    raw = box.commands.run(["od", "-An", "-tx1"], stdin=b"\x00\xff")
    assert raw.stdout.split() == ["00", "ff"]
    slow = box.commands.run(["sleep", "30"], timeout=0.5)
    assert slow.timed_out and slow.exit_code == 137
    with pytest.raises(CommandNotFound, match="no-such-program"):
        box.commands.run(["no-such-program"])


def test_callbacks_receive_the_output_while_it_runs(box: Shell) -> None:
    seen: list[tuple[str, float]] = []
    errors: list[str] = []
    started = time.monotonic()
    result = box.commands.run(
        "for i in 1 2 3; do echo $i; sleep 0.3; done; echo done >&2",
        on_stdout=lambda data: seen.append((data, time.monotonic() - started)),
        on_stderr=errors.append,
    )
    assert "".join(d for d, _ in seen) == result.stdout == "1\n2\n3\n"
    assert errors == ["done\n"] and result.stderr == "done\n" and result.exit_code == 0
    assert seen[0][1] < result.duration_ms / 1000 - 0.3, "the first line came only at the end"


def test_the_stream_yields_started_then_output_then_the_exit(box: Shell) -> None:
    with box.commands.stream("for i in 1 2 3; do echo $i; sleep 0.05; done; exit 7") as events:
        got = [event for event in events]
    assert isinstance(got[0], CommandStarted) and got[0].pid > 0
    outputs = [e for e in got if isinstance(e, CommandOutput)]
    assert "".join(e.data for e in outputs) == "1\n2\n3\n" and len(outputs) >= 2
    assert isinstance(got[-1], CommandExit) and got[-1].exit_code == 7


def test_leaving_a_stream_early_releases_its_connection(box: Shell) -> None:
    for _ in range(3):
        with box.commands.stream("echo first; sleep 30") as events:
            for event in events:
                if isinstance(event, CommandOutput):
                    break
    assert (box.commands.run("echo still")).stdout == "still\n"


def test_run_code_uses_the_shells_language_or_the_one_given(box: Shell) -> None:
    assert (box.run_code("print(6*7)")).stdout == "42\n"
    seen: list[str] = []
    result = box.run_code("echo $0 >&2; exit 4", language="bash", on_stderr=seen.append)
    assert (result.exit_code, "".join(seen)) == (4, result.stderr) and result.stderr
    slow = box.run_code("import time; time.sleep(30)", timeout=0.5)
    assert slow.timed_out
    with pytest.raises(InvalidRequest, match="language"):
        box.run_code("x", language="cobol")


# files ------------------------------------------------------------------------------------------
def test_files_read_write_list_stat_mkdir_and_remove(box: Shell) -> None:
    every_byte = bytes(range(256))
    assert box.files.write("/workspace/bytes.bin", every_byte) == 256
    assert box.files.read("bytes.bin") == every_byte
    box.files.write("text.txt", "héllo\n", mode=0o600)
    assert box.files.read_text("/workspace/text.txt") == "héllo\n"
    entry = box.files.stat("/workspace/text.txt")
    assert (entry.kind, entry.size, entry.mode) == ("file", len("héllo\n".encode()), 0o600)
    box.files.mkdir("/workspace/a/b")
    box.files.write("/workspace/a/b/c.txt", "c")
    assert [e.name for e in box.files.list()] == ["a", "bytes.bin", "text.txt"]
    assert box.files.exists("/workspace/a/b/c.txt")
    with pytest.raises(InvalidRequest):
        box.files.remove("/workspace/a")
    box.files.remove("/workspace/a", recursive=True)
    assert not box.files.exists("/workspace/a")
    with pytest.raises(FileNotFound):
        box.files.read("/workspace/a/b/c.txt")
    with pytest.raises(FileNotFound):
        box.files.write("/workspace/no/such/dir.txt", "x")


class PeakRss:
    """The largest growth of this process's resident memory while the block runs."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_large_files_stream_both_ways_in_bounded_memory(box: Shell, tmp_path: Path) -> None:
    source, copy = tmp_path / "big.bin", tmp_path / "copy.bin"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(BIG_FILE_BYTES // 2**20):
            chunk = os.urandom(2**20)
            digest.update(chunk)
            f.write(chunk)
    with PeakRss() as up:
        assert box.files.upload(source, "/workspace/big.bin") == BIG_FILE_BYTES
    inside = box.commands.run(["sha256sum", "/workspace/big.bin"])
    assert inside.stdout.split()[0] == digest.hexdigest()
    with PeakRss() as down:
        assert box.files.download("/workspace/big.bin", copy) == BIG_FILE_BYTES
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest.hexdigest()
    assert up.growth < 48 * 2**20, f"upload grew memory by {up.growth >> 20} MiB"
    assert down.growth < 48 * 2**20, f"download grew memory by {down.growth >> 20} MiB"


# lifecycle --------------------------------------------------------------------------------------
def test_lifecycle_methods_act_on_the_shell_and_update_its_info(sdk: Shells, box: Shell) -> None:
    box.files.write("/etc/marker", "system")
    box.files.write("/workspace/keep.txt", "mine")
    box.restart()
    assert box.info.state == "running" and box.files.read_text("/etc/marker") == "system"
    snap = box.snapshot("before-reinstall")
    assert (snap.shell_id, snap.name) == (box.id, "before-reinstall")
    assert snap.id in {s.id for s in sdk.snapshots.list(box.id)}
    assert "shells-agent ready" in box.logs()
    box.reinstall_os()
    assert not box.files.exists("/etc/marker") and box.files.exists("/workspace/keep.txt")
    box.wipe_state()
    assert box.files.list("/workspace") == []
    box.stop()
    assert box.info.state == "stopped" and (box.refresh()).state == "stopped"
    with pytest.raises(InvalidState):
        box.commands.run("true")
    box.start()
    assert box.info.state == "running"
    actions = [e.action for e in box.events() if e.kind == "action"]
    assert actions == ["restart", "snapshot", "logs", "reinstall_os", "wipe_state", "stop", "start"]
    with sdk.create(snapshot=snap.id) as restored:
        assert restored.files.read_text("/workspace/keep.txt") == "mine"


def test_pause_resume_and_fork_are_a_typed_conflict_on_containers(box: Shell) -> None:
    for action in (box.pause, box.resume, lambda: box.fork(2)):
        with pytest.raises(ActionNotSupported) as err:
            action()
        assert isinstance(err.value, Conflict) and err.value.code == "action_not_supported"
        assert err.value.details["runtime"] == "container" and "support" in err.value.message


# templates --------------------------------------------------------------------------------------
SPEC = """
name = "{name}"
parent = "{parent}"
commands = ["echo built > /opt/sdk-built.txt"]

[[files]]
path = "/etc/sdk-test.txt"
content = "from the spec"

[env]
SDK_TEST = "yes"
"""


def test_templates_build_list_get_save_and_delete(sdk: Shells, box: Shell) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}:1"
    spec = SPEC.format(name=name, parent=box.info.template)
    events: list[BuildEvent] = []
    built = sdk.templates.build(spec, on_event=events.append)
    steps = [e for e in events if isinstance(e, BuildStep)]
    assert built.name == name and built.env["SDK_TEST"] == "yes"
    assert [s.index for s in steps] == list(range(1, len(steps) + 1)) and steps[-1].total >= len(steps)
    assert isinstance(events[-1], BuildDone) and not events[-1].cached
    again = sdk.templates.build(spec)  # same content: nothing is built
    assert again.name == name and again.content_hash == built.content_hash
    with sdk.templates.build_stream(spec) as stream:
        assert [type(e) for e in stream] == [BuildDone]
    assert name in {t.name for t in sdk.templates.list()}
    assert (sdk.templates.get(name)).content_hash == built.content_hash
    assert (sdk.templates.presets())["python"]
    saved_name = f"sdk-saved-{uuid.uuid4().hex[:8]}:1"
    with sdk.create("bash", template=name) as shell:
        out = shell.commands.run("cat /etc/sdk-test.txt /opt/sdk-built.txt; echo $SDK_TEST")
        assert out.stdout == "from the specbuilt\nyes\n"
        shell.files.write("/workspace/work.txt", "kept")
        saved = sdk.templates.save(shell.id, saved_name, include_workspace=True)
    assert saved.name == saved_name
    with sdk.create("bash", template=saved_name) as copy:
        assert copy.files.read_text("/workspace/work.txt") == "kept"
    sdk.templates.delete(saved_name)
    sdk.templates.delete(name)
    with pytest.raises(TemplateNotFound):
        sdk.templates.get(name)


def test_a_bad_spec_is_refused_with_the_key_to_fix(sdk: Shells) -> None:
    with pytest.raises(InvalidTemplateSpec, match="colour") as err:
        sdk.templates.build('name = "x:1"\nparent = "base:1"\ncolour = "red"\n')
    assert isinstance(err.value, InvalidRequest)
    with pytest.raises(InvalidTemplateSpec):
        with sdk.templates.build_stream("not toml ["):
            pass


# networking -------------------------------------------------------------------------------------
def test_a_shells_network_policy_is_read_and_changed_live(sdk: Shells) -> None:
    with sdk.create("python", network="localhost") as shell:
        status = shell.network()
        assert (status.policy.mode, status.policy.allow, status.networks) == ("localhost", (), [])
        changed = shell.set_network("internet", ["example.org:443"])
        assert (changed.policy.mode, changed.policy.allow) == ("internet", ("example.org:443",))
        assert (shell.refresh()).network.mode == "internet"
        sealed = shell.set_network("sealed")
        assert sealed.policy.mode == "sealed" and isinstance(sealed.blocked, list)
        with pytest.raises(InvalidRequest, match="internet"):
            shell.set_network("localhost", ["example.org:443"])
    with sdk.create("bash", allow=["example.org:443"]) as allowed:
        assert (allowed.info.network.mode, allowed.info.network.allow) == ("internet", ("example.org:443",))


def test_private_networks_join_shells_and_refuse_to_go_while_used(sdk: Shells) -> None:
    name = f"sdk{uuid.uuid4().hex[:8]}"
    network = sdk.networks.create(name)
    assert network.name == name and network.cidr and network.shells == []
    try:
        with (
            sdk.create("python", network="localhost", networks=[name]) as first,
            sdk.create("python", network="localhost") as second,
        ):
            joined = sdk.networks.attach(name, second.id)
            members = {m.id: m.address for m in joined.shells}
            assert set(members) == {first.id, second.id} and members[second.id]
            assert name in {n.name for n in sdk.networks.list()}
            status = first.network()
            assert status.networks == [name] and status.addresses["networks"][name]
            with pytest.raises(NetworkInUse):
                sdk.networks.delete(name)
            sdk.networks.detach(name, second.id)
            assert [m.id for m in (sdk.networks.get(name)).shells] == [first.id]
    finally:
        sdk.networks.delete(name)
    with pytest.raises(NetworkNotFound):
        sdk.networks.get(name)


def test_ports_are_exposed_listed_and_closed(box: Shell) -> None:
    with pytest.raises(InvalidState, match="sealed"):
        box.ports.expose(8000)
    box.set_network("localhost")
    private = box.ports.expose(8000)
    assert private.port == 8000 and private.url and private.token and not private.public
    assert private.token not in repr(private)
    public = box.ports.expose(8001, public=True)
    assert public.public and public.token is None
    assert sorted(p.port for p in box.ports.list()) == [8000, 8001]
    box.ports.close(8000)
    assert [p.port for p in box.ports.list()] == [8001]
    with pytest.raises(PortNotExposed):
        box.ports.close(8000)


# errors -----------------------------------------------------------------------------------------
class Recorder(httpx.BaseTransport):
    """Passes every request to the server and keeps the answers' headers."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[httpx.Headers] = []
        self.answered: list[httpx.Headers] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers)
        response = self.inner.handle_request(request)
        self.answered.append(response.headers)
        return response

    def close(self) -> None:
        self.inner.close()


def test_errors_carry_their_class_code_message_and_request_id(server: ServerProcess) -> None:
    recorder = Recorder()
    extra = {"X-Caller": "sdk-test", "Authorization": "Bearer not-this-one"}
    with Shells(server.url, server.token, transport=recorder, headers=extra) as client:
        with pytest.raises(ShellNotFound) as err:
            client.get("sh_doesnotexist0000000000")
    assert recorder.sent[-1]["x-caller"] == "sdk-test"
    assert recorder.sent[-1]["x-shells-door"] == "sdk"
    assert recorder.sent[-1]["authorization"] == f"Bearer {server.token}"
    assert isinstance(err.value, NotFound) and err.value.code == "shell_not_found"
    assert "sh_doesnotexist0000000000" in err.value.message
    assert err.value.request_id is not None and REQUEST_ID.fullmatch(err.value.request_id)
    assert err.value.request_id == recorder.sent[-1]["x-request-id"] == recorder.answered[-1]["x-request-id"]

    with Shells(server.url, "shl_forged") as forged:
        with pytest.raises(Unauthenticated) as denied:
            forged.list()
    assert isinstance(denied.value, AuthError) and denied.value.request_id

    with Shells(server.url, server.token) as client:
        with pytest.raises(InvalidRequest, match="python"):
            client.create("cobol")


def test_a_missing_token_is_an_auth_error_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHELLS_API_TOKEN", raising=False)
    with pytest.raises(Unauthenticated, match="SHELLS_API_TOKEN"):
        Shells("http://127.0.0.1:9")


def test_environment_variables_configure_the_client(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELLS_BASE_URL", server.url)
    monkeypatch.setenv("SHELLS_API_TOKEN", server.token)
    with Shells() as client:
        assert client.base_url == server.url
        assert "version" in client.info()


# tenants, tokens, grants, terminals, the audit trail --------------------------------------------
LEAD_SCOPES = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.term",
               "tenant.admin"]  # fmt: skip


def test_tenants_tokens_grants_terminals_and_the_audit_trail(sdk: Shells, server: ServerProcess) -> None:
    team = sdk.tenants.create(f"sdk-{uuid.uuid4().hex[:8]}", quotas={"max_shells": 3})
    assert (team.quotas["max_shells"], team.overrides) == (3, {"max_shells": 3})
    assert team.name in {t.name for t in sdk.tenants.list()}
    lead = sdk.tokens.create(LEAD_SCOPES, tenant=team.name, principal="lead", kind="person")
    assert lead.token.startswith("shl_") and lead.token not in repr(lead)
    assert (lead.tenant, lead.principal, sorted(lead.scopes)) == (team.name, "lead", sorted(LEAD_SCOPES))
    reader = sdk.tokens.create(
        ["shells.read", "shells.exec"], tenant=team.name, principal="reader", expires_in_s=600
    )
    assert reader.expires_at is not None
    with Shells(server.url, lead.token) as client:
        assert {p.name for p in client.principals.list()} == {"lead", "reader"}
        with client.create("bash") as shell:
            assert (client.tenants.get(team.name)).usage == {
                "shells": 1,
                "vcpus": 1.0,
                "memory_mib": 512,
                "snapshots": 0,
            }
            grant = shell.grants.add("reader", "viewer")
            assert (grant.principal, grant.role, grant.granted_by) == ("reader", "viewer", "lead")
            assert [g.principal for g in shell.grants.list()] == ["reader"]
            with Shells(server.url, reader.token) as viewer:
                seen = viewer.get(shell.id)
                with pytest.raises(PermissionDenied) as denied:
                    seen.commands.run("true")
                assert denied.value.details == {"role": "viewer", "needs": "operator"}
            shell.grants.revoke("reader")
            with pytest.raises(GrantNotFound):
                shell.grants.revoke("reader")

            cred = shell.term(ttl_s=60)
            assert cred.token.startswith("term_") and cred.token not in repr(cred)
            assert cred.url.startswith("ws://") and cred.url.endswith(f"/v1/shells/{shell.id}/term/ws")
            listed = shell.terminals.list()
            assert [(c.id, c.token, c.in_use) for c in listed] == [
                (cred.id, f"term_…{cred.token[-4:]}", False)
            ]
            shell.terminals.revoke(cred.id)
            assert (shell.terminals.list())[0].revoked_at is not None

        trail = client.audit(shell=shell.id)
        assert {(e.principal, e.door, e.target) for e in trail} >= {("lead", "sdk", shell.id)}
        assert [e.outcome for e in trail if e.principal == "reader"] == ["ok", "permission_denied"]
        assert [e.action for e in trail if e.destructive] == ["delete"]
        assert all(e.request_id for e in trail)
        assert client.audit(shell=shell.id, after=trail[-1].id) == []

        client.tokens.revoke(reader.id)
        assert {t.id: t.revoked_at is not None for t in client.tokens.list()}[reader.id]
    with Shells(server.url, reader.token) as revoked:
        with pytest.raises(CredentialRevoked):
            revoked.list()


def test_usage_pricing_and_billing_terms(sdk: Shells, server: ServerProcess) -> None:
    team = sdk.tenants.create(f"bill-{uuid.uuid4().hex[:8]}")
    lead = sdk.tokens.create(LEAD_SCOPES, tenant=team.name, principal="lead")
    with Shells(server.url, lead.token) as client:
        pricing = client.pricing()
        assert pricing.classes["microvm"]["vcpu_hour_usd"] == "0.0504"
        assert ("bash", "container") in {(o.language, o.runtime) for o in pricing.runtimes if o.available}
        shell = client.create("bash")
        time.sleep(0.5)
        shell.stop()
        report = client.usage(group_by="class")
        [line] = report.lines
        assert (line.key, report.tenant, report.owner) == ("container", team.name, None)
        assert line.seconds >= 0.5 and line.cost_usd == report.total.cost_usd > 0
        assert report.month is not None and report.month.cost_usd == report.total.cost_usd
        csv_text = client.usage_csv(group_by="shell", start=report.start)
        assert csv_text.splitlines()[1].startswith(f"{shell.id},")
        with pytest.raises(InvalidRequest):
            client.usage(group_by="fortnight")
        terms = client.tenants.set_billing(team.name, budget_usd="2.5")
        assert (terms.budget_usd, terms.cap_reached) == (Decimal("2.5"), False)
        with pytest.raises(PermissionDenied):
            client.tenants.set_billing(team.name, free_tier_usd=1)
        assert (sdk.tenants.set_billing(team.name, free_tier_usd=1)).free_tier_usd == 1
        terms = client.tenants.billing(team.name)
        assert (terms.budget_usd, terms.free_tier_usd, terms.charged_usd) == (
            Decimal("2.5"),
            Decimal(1),
            Decimal(0),
        )
        assert (client.tenants.set_billing(team.name, budget_usd=None)).budget_usd is None
        shell.kill()


def test_the_door_the_audit_trail_records_can_be_named(sdk: Shells, server: ServerProcess) -> None:
    team = sdk.tenants.create(f"door-{uuid.uuid4().hex[:8]}")
    admin = sdk.tokens.create(["shells.read", "tenant.admin"], tenant=team.name, principal="ops")
    with Shells(server.url, admin.token, headers={"x-shells-door": "console"}) as console:
        console.list()
    with Shells(server.url, admin.token) as client:
        doors = [e.door for e in client.audit(action="list_shells")]
    assert doors == ["console"]
    with Shells(server.url, admin.token, headers={"X-Shells-Door": "backdoor"}) as bad:
        with pytest.raises(InvalidRequest, match="X-Shells-Door"):
            bad.list()


# retries ----------------------------------------------------------------------------------------
def test_a_rate_limited_call_waits_as_asked_and_is_sent_again(sdk: Shells, server: ServerProcess) -> None:
    team = sdk.tenants.create(f"slow-{uuid.uuid4().hex[:8]}", quotas={"requests_per_s": 2, "burst": 1})
    reader = sdk.tokens.create(["shells.read"], tenant=team.name, principal="reader")
    with Shells(server.url, reader.token) as client:
        started = time.monotonic()
        for _ in range(2):
            assert client.list() == []
        narrower = client.tokens.create(["shells.read"], expires_in_s=60)  # a POST, retried too
        assert time.monotonic() - started >= 0.8  # two waits of about 0.5 s for the bucket to refill
    with Shells(server.url, narrower.token, retry=RetryPolicy(max_retries=0)) as impatient:
        with pytest.raises(RateLimited) as limited:
            for _ in range(3):
                impatient.list()
    assert limited.value.details["limit"] == "requests_per_s"


class DropAfterSend(httpx.BaseTransport):
    """Delivers every request; for those ``drop`` picks, waits for the whole answer, then pretends
    the connection broke before it arrived."""

    def __init__(self, drop: Callable[[httpx.Request], bool]) -> None:
        self.inner = httpx.HTTPTransport()
        self.drop = drop
        self.dropped: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not self.drop(request):
            return response
        response.read()
        response.close()
        self.dropped.append(f"{request.method} {request.url.path}")
        raise httpx.RemoteProtocolError("connection lost after the request was sent", request=request)

    def close(self) -> None:
        self.inner.close()


def dropping(method: str, path: str, times: int | None = None) -> Callable[[httpx.Request], bool]:
    """Pick the requests (the first ``times`` only, if given) of ``method`` to ``path``."""
    left = [times]

    def pick(request: httpx.Request) -> bool:
        if request.method != method or request.url.path != path or left[0] == 0:
            return False
        if left[0] is not None:
            left[0] -= 1
        return True

    return pick


@pytest.mark.parametrize("call", ["exec", "exec streamed", "run", "restart", "create"])
def test_exec_create_and_actions_are_never_sent_twice(
    server: ServerProcess, sdk: Shells, box: Shell, call: str
) -> None:
    tag = uuid.uuid4().hex
    path = {
        "run": f"/v1/shells/{box.id}/run",
        "restart": f"/v1/shells/{box.id}/actions/restart",
        "create": "/v1/shells",
    }.get(call, f"/v1/shells/{box.id}/exec")
    transport = DropAfterSend(dropping("POST", path))
    with Shells(server.url, server.token, transport=transport, retry=NO_WAIT) as client:
        shell = client.get(box.id)
        with pytest.raises(Unavailable, match="not sent again") as err:
            if call == "exec":
                shell.commands.run("echo ran >> /workspace/count")
            elif call == "exec streamed":
                shell.commands.run("echo ran >> /workspace/count", on_stdout=print)
            elif call == "run":
                shell.run_code("open('/workspace/count', 'a').write('ran\\n')")
            elif call == "restart":
                shell.restart()
            else:
                client.create("bash", labels={"drop": tag})
    assert transport.dropped == [f"POST {path}"] and err.value.request_id
    if call in ("exec", "exec streamed", "run"):
        assert box.files.read_text("/workspace/count") == "ran\n"
    elif call == "restart":
        assert [e.action for e in box.events() if e.kind == "action"] == ["restart"]
    else:
        created = sdk.list(label=f"drop={tag}")
        assert len(created) == 1
        created[0].kill()


def test_reads_writes_and_deletes_are_retried(server: ServerProcess, box: Shell, tmp_path: Path) -> None:
    local = tmp_path / "up.txt"
    local.write_text("streamed twice")
    shell_path = f"/v1/shells/{box.id}"
    put = dropping("PUT", f"{shell_path}/files", times=1)
    delete = dropping("DELETE", shell_path, times=1)
    transport = DropAfterSend(dropping("GET", shell_path))
    with Shells(server.url, server.token, transport=transport, retry=NO_WAIT) as client:
        with pytest.raises(Unavailable):
            client.get(box.id)
        assert transport.dropped == [f"GET {shell_path}"] * (1 + NO_WAIT.max_retries)
        transport.drop = lambda request: put(request) or delete(request)
        shell = client.get(box.id)
        assert shell.files.upload(local, "/workspace/up.txt") == len("streamed twice")
        assert box.files.read_text("/workspace/up.txt") == "streamed twice"
        assert shell.kill() is False  # the first DELETE did it; its retry found nothing left
    assert transport.dropped[-2:] == [f"PUT {shell_path}/files", f"DELETE {shell_path}"]


class RefuseFirst(httpx.BaseTransport):
    """Fails the first ``n`` connections before sending anything, then delivers."""

    def __init__(self, n: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.left = n
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.left > 0:
            self.left -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_create_that_never_reached_the_server_is_retried_once_delivered(
    server: ServerProcess,
) -> None:
    transport = RefuseFirst(2)
    tag = uuid.uuid4().hex
    with (
        Shells(server.url, server.token, transport=transport, retry=NO_WAIT) as client,
        client.create("bash", labels={"refused": tag}) as shell,
    ):
        assert transport.attempts == 3
        assert [s.id for s in client.list(label=f"refused={tag}")] == [shell.id]


class SilentServer:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_no_answer_in_time_is_a_timeout_and_only_reads_are_retried() -> None:
    with SilentServer() as silent:
        with Shells(silent.url, "t", timeout=0.2, retry=NO_WAIT) as client:
            with pytest.raises(Timeout):
                client.list()
            assert len(silent.accepted) == 1 + NO_WAIT.max_retries
            with pytest.raises(Timeout):
                client.create("bash")
            assert len(silent.accepted) == 2 + NO_WAIT.max_retries


def test_an_unreachable_server_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Shells(url, "t", retry=RetryPolicy(max_retries=1, backoff_s=0.0)) as client:
        with pytest.raises(Unavailable, match="SHELLS_BASE_URL"):
            client.create("bash")
