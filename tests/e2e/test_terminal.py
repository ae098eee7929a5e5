"""The live terminal, driven by a real WebSocket client against real shells: type, read, resize, exit;
credentials that expire mid-session, are revoked, are used twice or for another shell; and nothing
in the shell that could be stolen."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .harness import ServerProcess
from .tenancy import MEMBER, Caller, Tenancy, create_shell, error

WAIT_S = 15.0


@dataclass
class Terms:
    tenancy: Tenancy
    alice: Caller
    bob: Caller
    shell: str
    other: str

    def mint(self, shell: str | None = None, caller: Caller | None = None, **body: Any) -> dict[str, Any]:
        r = (caller or self.alice).http.post(f"/v1/shells/{shell or self.shell}/term", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def terms(server: ServerProcess) -> Iterator[Terms]:
    tenancy = Tenancy(server)
    tenant = tenancy.tenant("term")
    alice = tenancy.caller(tenant, "alice", MEMBER, kind="person")
    bob = tenancy.caller(tenant, "bob", MEMBER)
    world = Terms(tenancy, alice, bob, create_shell(alice), create_shell(alice))
    yield world
    for sid in (world.shell, world.other):
        alice.http.delete(f"/v1/shells/{sid}")
    tenancy.close()


@contextmanager
def attached(
    cred: dict[str, Any], *, in_url: bool = True, cols: int = 80, rows: int = 24
) -> Iterator[ClientConnection]:
    query = f"?cols={cols}&rows={rows}" + (f"&token={cred['token']}" if in_url else "")
    with connect(
        cred["url"] + query, open_timeout=WAIT_S, additional_headers={"X-Shells-Door": "console"}
    ) as ws:
        if not in_url:
            ws.send(json.dumps({"type": "auth", "token": cred["token"]}))
        ready = json.loads(ws.recv(timeout=WAIT_S))
        assert ready["type"] == "ready" and ready["expires_at"] == cred["expires_at"], ready
        screen_until(ws, rb"# $")  # bash's prompt: it reads keystrokes from now on (typeahead may be lost)
        yield ws


def screen_until(ws: ClientConnection, pattern: bytes) -> bytes:
    """Terminal output until ``pattern`` (a regex) appears; text messages fail the wait."""
    screen = b""
    deadline = time.monotonic() + WAIT_S
    while not re.search(pattern, screen):
        message = ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        assert isinstance(message, bytes), (message, screen)
        screen += message
    return screen


def next_text(ws: ClientConnection) -> dict[str, Any]:
    """The next text (JSON) message, skipping terminal output."""
    deadline = time.monotonic() + WAIT_S
    while isinstance(message := ws.recv(timeout=max(deadline - time.monotonic(), 0.01)), bytes):
        pass
    return dict(json.loads(message))


def last_message(ws: ClientConnection) -> tuple[dict[str, Any], int, str]:
    """The next text message, then the close: (message, close code, close reason)."""
    message = next_text(ws)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None
    return message, closed.value.rcvd.code, closed.value.rcvd.reason


def refused(cred: dict[str, Any], token: str | None = None) -> tuple[int, dict[str, Any]]:
    """Connect with ``?token=`` expecting the handshake to be refused: its status and error."""
    with pytest.raises(InvalidStatus) as caught:
        connect(f"{cred['url']}?token={token or cred['token']}", open_timeout=WAIT_S).close()
    response = caught.value.response
    return response.status_code, json.loads(bytes(response.body or b""))["error"]


def test_type_a_command_read_its_output_resize_and_exit(terms: Terms) -> None:
    cred = terms.mint()
    assert re.fullmatch(r"term_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", cred["token"])
    assert cred["url"].startswith("ws://") and cred["url"].endswith(f"/v1/shells/{terms.shell}/term/ws")
    with attached(cred, cols=100, rows=30) as ws:
        ws.send(json.dumps({"type": "input", "data": "echo $((6*7)); stty size\n"}))
        screen = screen_until(ws, rb"30 100\r\n")
        assert re.search(rb"[\r\n]42\r\n", screen)
        ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        ws.send(b"stty size; tty\n")  # keystrokes as a binary frame
        assert re.search(rb"40 120\r\n/dev/pts/\d+\r\n", screen_until(ws, rb"/dev/pts/\d+\r\n"))
        ws.send(json.dumps({"type": "resize", "cols": 0, "rows": 40}))
        bad = next_text(ws)
        assert (bad["type"], bad["error"]["code"]) == ("error", "invalid_request")  # and the session goes on
        ws.send(b"exit 5\n")
        message, code, _ = last_message(ws)
    assert message == {"type": "exit", "exit_code": 5, "signal": None}
    assert code == 1000
    session = [e for e in terms.alice.http.get(f"/v1/shells/{terms.shell}/events").json()["events"]
               if e["action"] == "term.session"][-1]  # fmt: skip
    assert (session["door"], session["outcome"], session["details"]["ended_by"]) == ("console", "ok", "exit")
    assert session["details"]["exit_code"] == 5


def test_a_terminal_starts_where_an_exec_would_with_the_same_environment(terms: Terms) -> None:
    """The template's env and workdir, then the shell's env: what an exec in that shell gets."""
    http, name = terms.alice.http, f"termenv-{secrets.token_hex(3)}:1"
    spec = f'name = "{name}"\nparent = "python:1"\nworkdir = "/srv"\n[env]\nFROM_TEMPLATE = "tpl"\n'
    built = http.post("/v1/templates/build", params={"wait": "true"}, json={"spec": spec})
    assert built.status_code == 200, built.text
    sid = create_shell(terms.alice, language="python", template=name, env={"FROM_SHELL": "own"})
    try:
        ran = http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"command": PROBE})
        assert ran.json()["stdout"] == "/srv tpl own 1\n", ran.text
        with attached(terms.mint(sid)) as ws:
            ws.send(PROBE.encode() + b"\n")
            assert b"/srv tpl own 1\r\n" in screen_until(ws, rb"/srv tpl own 1\r\n")
    finally:
        http.delete(f"/v1/shells/{sid}")
        http.delete(f"/v1/templates/{name}")


PROBE = 'echo "$(pwd) $FROM_TEMPLATE $FROM_SHELL $PIP_BREAK_SYSTEM_PACKAGES"'


def test_ctrl_d_leaves_and_the_token_may_come_in_the_first_message(terms: Terms) -> None:
    cred = terms.mint()
    with attached(cred, in_url=False) as ws:
        ws.send(b"\x04")
        message, code, _ = last_message(ws)
    assert (message["type"], message["exit_code"], code) == ("exit", 0, 1000)
    with connect(cred["url"], open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"type": "hello"}))
        message, code, reason = last_message(ws)
    assert (message["error"]["code"], code, reason) == ("invalid_request", 4400, "invalid_request")


def test_expiry_closes_a_live_session_with_a_clear_reason(terms: Terms) -> None:
    cred = terms.mint(ttl_s=3)
    started = time.monotonic()
    with attached(cred) as ws:
        ws.send(b"sleep 600\n")
        assert "sleep 600" in processes(terms)
        message, code, reason = last_message(ws)
    assert 2.0 < time.monotonic() - started < 9.0
    assert message["type"] == "error" and message["error"]["code"] == "credential_expired"
    assert "expired" in message["error"]["message"] and "POST /v1/shells/" in message["error"]["message"]
    assert (code, reason) == (4401, "credential_expired")
    status, err = refused(cred)
    assert (status, err["code"]) == (401, "credential_expired")
    assert "sleep 600" not in processes(terms)  # the session's processes went with it


def processes(terms: Terms) -> str:
    """The command lines running in the shell (bounded wait for a just-typed one to appear)."""
    command = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
    deadline = time.monotonic() + 2
    while True:
        body = {"command": command}
        r = terms.alice.http.post(f"/v1/shells/{terms.shell}/exec", params={"wait": "true"}, json=body)
        out = str(r.json()["stdout"])
        if "sleep 600" in out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def test_revoking_a_credential_ends_its_session(terms: Terms) -> None:
    cred = terms.mint()
    with attached(cred) as ws:
        listed = terms.alice.http.get(f"/v1/shells/{terms.shell}/term").json()["credentials"]
        mine = next(c for c in listed if c["id"] == cred["id"])
        assert mine["token"] == "term_…" + cred["token"][-4:] and mine["in_use"] is True
        assert cred["token"] not in json.dumps(listed)
        assert terms.alice.http.delete(f"/v1/shells/{terms.shell}/term/{cred['id']}").status_code == 204
        message, code, _ = last_message(ws)
    assert (message["error"]["code"], code) == ("credential_revoked", 4401)
    status, err = refused(cred)
    assert (status, err["code"]) == (401, "credential_revoked")


def test_revoking_the_api_token_ends_the_sessions_it_minted(terms: Terms) -> None:
    carol = terms.tenancy.caller(terms.alice.tenant, "carol", MEMBER)
    carols_other_token = terms.tenancy.caller(terms.alice.tenant, "carol", MEMBER)
    shell = create_shell(carol)
    try:
        cred = terms.mint(shell, carol)
        with attached(cred) as ws:
            assert terms.tenancy.admin.delete(f"/v1/tokens/{carol.token_id}").status_code == 204
            message, code, _ = last_message(ws)
        assert (message["error"]["code"], code) == ("credential_revoked", 4401)
        status, err = refused(cred)
        assert (status, err["code"]) == (401, "credential_revoked")
    finally:
        carols_other_token.http.delete(f"/v1/shells/{shell}")


def test_a_credential_serves_one_session_at_a_time(terms: Terms) -> None:
    cred = terms.mint()
    with attached(cred):
        status, err = refused(cred)
        assert (status, err["code"]) == (409, "credential_in_use")
    deadline = time.monotonic() + WAIT_S
    while refused_in_use(cred):  # free again once the server saw the first session end
        assert time.monotonic() < deadline, "the credential stayed in use after its session ended"
        time.sleep(0.05)


def refused_in_use(cred: dict[str, Any]) -> bool:
    try:
        with attached(cred) as ws:
            ws.send(b"echo again-$((1+1))\n")
            screen_until(ws, rb"again-2")
    except InvalidStatus as exc:
        assert exc.response.status_code == 409
        return True
    return False


def test_a_credential_for_another_shell_is_unknown_there(terms: Terms) -> None:
    cred = terms.mint()
    elsewhere = dict(cred, url=cred["url"].replace(terms.shell, terms.other))
    status, err = refused(elsewhere)
    made_up_status, made_up = refused(elsewhere, "term_abcdefgh_" + "x" * 43)
    assert status == made_up_status == 401
    assert err == made_up and err["code"] == "unauthenticated"
    assert terms.shell not in json.dumps(err)


def test_only_operators_mint_and_see_only_their_own_credentials(terms: Terms) -> None:
    error(terms.bob.http.post(f"/v1/shells/{terms.shell}/term", json={}), 404, "shell_not_found")
    r = terms.alice.http.post(
        f"/v1/shells/{terms.shell}/grants", json={"principal": "bob", "role": "operator"}
    )
    assert r.status_code == 201
    bobs = terms.mint(caller=terms.bob)
    seen = {
        c["principal"] for c in terms.bob.http.get(f"/v1/shells/{terms.shell}/term").json()["credentials"]
    }
    assert seen == {"bob"}
    everyone = terms.alice.http.get(f"/v1/shells/{terms.shell}/term").json()["credentials"]
    assert {"alice", "bob"} <= {c["principal"] for c in everyone}
    alices = next(c for c in everyone if c["principal"] == "alice")
    error(terms.bob.http.delete(f"/v1/shells/{terms.shell}/term/{alices['id']}"), 404, "credential_not_found")
    for ttl in (0, 901, "5", True):
        error(
            terms.bob.http.post(f"/v1/shells/{terms.shell}/term", json={"ttl_s": ttl}), 400, "invalid_request"
        )
    assert terms.bob.http.delete(f"/v1/shells/{terms.shell}/term/{bobs['id']}").status_code == 204
    terms.alice.http.delete(f"/v1/shells/{terms.shell}/grants/bob")


TOKEN_SHAPE = r"(shl|term)_[a-z0-9]{8}_[A-Za-z0-9_-]{43}"


def test_no_secret_is_inside_a_shell_to_steal(terms: Terms, server: ServerProcess) -> None:
    """With a terminal attached, nothing in the shell's files, environments or command lines looks
    like a token (the search's own pattern does not match itself), and what is there is useless."""
    cred = terms.mint()
    search = (
        f"grep -rIEoh '{TOKEN_SHAPE}' / --exclude-dir=proc --exclude-dir=sys 2>/dev/null | sed 's/^/file /'; "
        "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | "
        f"grep -Eo '{TOKEN_SHAPE}' | sort -u | sed 's/^/process /'; echo searched"
    )

    def run(command: str) -> str:
        body = {"command": command, "timeout_s": 300}
        r = terms.alice.http.post(f"/v1/shells/{terms.shell}/exec", params={"wait": "true"}, json=body)
        return str(r.json()["stdout"])

    # A decoy shaped like a credential proves the search finds one: in a file and in a command line.
    decoy = "term_decoy000_" + "d" * 43
    planted = run(f"echo {decoy} > /tmp/decoy; {search}; rm /tmp/decoy")
    assert planted == f"file {decoy}\nprocess {decoy}\nsearched\n"
    with attached(cred) as ws:
        ws.send(b"env; echo END-$((7*6))\n")
        screen = screen_until(ws, rb"END-42")
        found = run(search)
    assert found == "searched\n"
    assert not re.search(TOKEN_SHAPE.encode(), screen)
    for secret in (cred["token"], terms.alice.token, server.token):
        assert secret.encode() not in screen
    hostname = run("hostname")
    for loot in (hostname.strip(), terms.shell, "shl_" + hostname.strip(), cred["id"]):
        with terms.tenancy.client(loot) as http:
            error(http.get("/v1/shells"), 401, "unauthenticated")
