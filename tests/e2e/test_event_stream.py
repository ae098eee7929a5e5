"""The live feed, ``GET /v1/events/stream``, against the real server: it pushes every change of every
shell the caller may see (whoever made it), nothing of anyone else's, resumes after a cursor, ends when
its token dies, and does not hold up the server's shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

from .harness import ServerProcess, running_server
from .sse import FeedReader, about, running
from .tenancy import MEMBER, Tenancy, create_shell, error


def _ready(feed: FeedReader) -> int:
    first = feed.next()
    assert first is not None and first.event == "ready", first
    return int(first.data["cursor"])


def test_the_stream_pushes_each_change_of_a_shell_with_its_record(
    server: ServerProcess, tenancy: Tenancy
) -> None:
    alice = tenancy.caller(tenancy.tenant("feed"), "alice", MEMBER)
    feed = FeedReader(server.url, alice.token)
    try:
        assert feed.response.headers["content-type"].startswith("text/event-stream")
        cursor = _ready(feed)
        sid = create_shell(alice, name="watched")
        seen = feed.until(running(sid))
        assert seen[0].data["event"]["kind"] == "create"
        assert seen[-1].data["shell"]["name"] == "watched"
        assert all(m.id is not None and m.id > cursor for m in seen)

        assert alice.http.post(f"/v1/shells/{sid}/actions", json={"capability": "stop"}).status_code == 200
        stopped = feed.until(about(sid, "action", "stopped"))[-1]
        assert stopped.data["shell"]["state"] == "stopped"
        assert stopped.data["event"]["door"] == "rest"

        assert alice.http.delete(f"/v1/shells/{sid}").status_code == 204
        gone = feed.until(about(sid, "delete"))[-1]
        assert gone.data["shell"]["state"] == "deleted"  # the last word on a shell still arrives
        ids = [m.id or 0 for m in [*seen, stopped, gone]]
        assert ids == sorted(ids)
    finally:
        feed.close()


def test_the_stream_shows_nothing_of_other_tenants_or_of_shells_not_shared(
    server: ServerProcess, tenancy: Tenancy
) -> None:
    a, b = tenancy.tenant("feed-a"), tenancy.tenant("feed-b")
    alice = tenancy.caller(a, "alice", MEMBER)
    carol = tenancy.caller(a, "carol", MEMBER)
    bob = tenancy.caller(b, "bob", MEMBER)
    feeds = {who.principal: FeedReader(server.url, who.token) for who in (carol, bob)}
    try:
        for feed in feeds.values():
            _ready(feed)
        secret = create_shell(alice)
        for who in (carol, bob):  # a shell of their own comes after alice's in the trail
            own = create_shell(who)
            seen = feeds[who.principal].until(running(own))
            assert not [m for m in seen if m.data["event"]["shell_id"] == secret], seen
        r = alice.http.post(f"/v1/shells/{secret}/grants", json={"principal": "carol", "role": "viewer"})
        assert r.status_code == 201, r.text
        r = alice.http.post(f"/v1/shells/{secret}/actions", json={"capability": "restart"})
        assert r.status_code == 200, r.text
        shared = feeds["carol"].until(about(secret, "action", "ok"))[-1]
        assert shared.data["event"]["action"] == "restart"
        assert shared.data["shell"]["owner"] == "alice"
    finally:
        for feed in feeds.values():
            feed.close()


def test_a_stream_resumes_after_a_cursor_or_the_last_event_id(
    server: ServerProcess, tenancy: Tenancy
) -> None:
    alice = tenancy.caller(tenancy.tenant("feed"), "alice", MEMBER)
    sid = create_shell(alice)
    first = alice.http.get(f"/v1/shells/{sid}/events").json()["events"][0]["id"]
    for params, headers in (({"after": first - 1}, {}), ({}, {"Last-Event-ID": str(first - 1)})):
        feed = FeedReader(server.url, alice.token, params, **headers)
        try:
            assert _ready(feed) == first - 1
            replayed = feed.until(running(sid))
            assert replayed[0].id == first
        finally:
            feed.close()
    bad = FeedReader(server.url, alice.token, None, **{"Last-Event-ID": "yesterday"})
    try:
        bad.response.read()
        error(bad.response, 400, "invalid_request")
    finally:
        bad.close()


def test_a_revoked_token_ends_its_stream_with_a_typed_error(server: ServerProcess, tenancy: Tenancy) -> None:
    tenant = tenancy.tenant("feed")
    victim = tenancy.caller(tenant, "victim", MEMBER)
    feed = FeedReader(server.url, victim.token)
    try:
        _ready(feed)
        assert tenancy.admin.delete(f"/v1/tokens/{victim.token_id}").status_code == 204
        last = feed.next()
        assert last is not None and last.event == "error", last
        assert last.data["error"]["code"] == "credential_revoked"
        assert feed.next() is None  # and the stream is over
    finally:
        feed.close()


def test_an_open_stream_does_not_hold_up_the_servers_shutdown(data_root: Path) -> None:
    with running_server(data_root / "feed-stop", warm_pool=0) as srv:
        feed = FeedReader(srv.url, srv.token)
        try:
            _ready(feed)
            srv.stop(signal.SIGTERM)  # waits for the process; it would wait forever without the fix
            assert feed.next() is None
        finally:
            feed.close()
