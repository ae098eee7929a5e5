"""Two tenants and several principals against the real server: isolation, roles, bad tokens on every
endpoint, enumeration, quotas, rate limits and the audit trail. Every refusal is typed and leaks
nothing: no other tenant's names, no host paths."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shells.domain.ids import new_id
from shells.settings import Settings

from ..support.waiting import wait_until
from .harness import ServerProcess
from .tenancy import ADMIN, MEMBER, Caller, Tenancy, create_shell, error


@dataclass
class World:
    tenancy: Tenancy
    a: str
    b: str
    a_admin: Caller
    alice: Caller
    victor: Caller
    otto: Caller
    nobody: Caller
    b_admin: Caller
    shell: str
    b_shell: str
    expired: str
    revoked: str
    template: str = ""
    """Saved from ``shell`` by alice: a template of tenant a."""
    network: str = ""
    """A private network of tenant a."""
    secret: str = ""
    """A secret of tenant a."""
    webhook: str = ""
    """A webhook of tenant a."""
    snapshot: str = ""
    """A snapshot of ``shell``, taken by alice."""
    volume: str = ""
    """A volume of tenant a."""
    bucket_credentials: str = ""
    """Stored bucket credentials of tenant a."""


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    tenancy = Tenancy(server)
    a, b = tenancy.tenant("acme"), tenancy.tenant("globex")
    expired = tenancy.mint(a, "ghost", MEMBER, expires_in_s=1)
    revoked = tenancy.mint(a, "gone", MEMBER)
    assert tenancy.admin.delete(f"/v1/tokens/{revoked['id']}").status_code == 204
    world = World(
        tenancy=tenancy,
        a=a,
        b=b,
        a_admin=tenancy.caller(a, "a-admin", ADMIN, kind="person"),
        alice=tenancy.caller(a, "alice", MEMBER, kind="person"),
        victor=tenancy.caller(a, "victor", MEMBER),
        otto=tenancy.caller(a, "otto", MEMBER),
        nobody=tenancy.caller(a, "nobody", []),
        b_admin=tenancy.caller(b, "b-admin", ADMIN),
        shell="",
        b_shell="",
        expired=expired["token"],
        revoked=revoked["token"],
    )
    world.shell = create_shell(world.alice, labels={"who": "alice"})
    world.b_shell = create_shell(world.b_admin)
    for grantee, role in (("victor", "viewer"), ("otto", "operator")):
        r = world.alice.http.post(
            f"/v1/shells/{world.shell}/grants", json={"principal": grantee, "role": role}
        )
        assert r.status_code == 201, r.text
    world.template = f"acme-{secrets.token_hex(3)}:1"
    r = world.alice.http.post("/v1/templates", json={"from_shell": world.shell, "name": world.template})
    assert r.status_code == 201, r.text
    world.network = f"anet{secrets.token_hex(3)}"
    assert world.a_admin.http.post("/v1/networks", json={"name": world.network}).status_code == 201
    world.secret = f"ACME_{secrets.token_hex(3).upper()}"
    body = {"name": world.secret, "value": "s3cr3t", "hosts": ["api.example.org"]}
    assert world.a_admin.http.post("/v1/secrets", json=body).status_code == 201
    r = world.a_admin.http.post("/v1/webhooks", json={"url": "http://198.51.100.11/", "events": ["*"]})
    assert r.status_code == 201, r.text
    world.webhook = r.json()["id"]
    r = world.alice.http.post(f"/v1/shells/{world.shell}/actions", json={"capability": "snapshot"})
    assert r.status_code == 200, r.text
    world.snapshot = r.json()["result"]["snapshot"]["id"]
    world.volume = f"avol{secrets.token_hex(3)}"
    r = world.a_admin.http.post("/v1/volumes", json={"name": world.volume, "size_gib": 1})
    assert r.status_code == 201, r.text
    world.bucket_credentials = f"akey{secrets.token_hex(3)}"
    body = {"name": world.bucket_credentials, "access_key_id": "AKIDA", "secret_access_key": "never-shown"}
    r = world.a_admin.http.post("/v1/bucket-credentials", json=body)
    assert r.status_code == 201, r.text
    time.sleep(1.1)  # the 1-second token has expired
    yield world
    for caller, shell in ((world.alice, world.shell), (world.b_admin, world.b_shell)):
        caller.http.delete(f"/v1/shells/{shell}")
    world.alice.http.delete(f"/v1/templates/{world.template}")
    world.a_admin.http.delete(f"/v1/networks/{world.network}")
    world.a_admin.http.delete(f"/v1/secrets/{world.secret}")
    world.a_admin.http.delete(f"/v1/webhooks/{world.webhook}")
    world.alice.http.delete(f"/v1/snapshots/{world.snapshot}")
    world.a_admin.http.delete(f"/v1/volumes/{world.volume}")
    world.a_admin.http.delete(f"/v1/bucket-credentials/{world.bucket_credentials}")
    tenancy.close()


def assert_leaks_nothing(r: httpx.Response, server: ServerProcess, *names: str) -> None:
    text = r.text
    for secret in (str(server.data_dir), str(Settings(data_dir=server.data_dir).run_dir), "/run/shells",
                   "/var/tmp", *names):  # fmt: skip
        assert secret not in text, (secret, text)


# isolation and roles --------------------------------------------------------------------------------


def test_each_tenant_lists_only_its_own_shells(world: World) -> None:
    a_ids = {s["id"] for s in world.a_admin.http.get("/v1/shells").json()["shells"]}
    b_ids = {s["id"] for s in world.b_admin.http.get("/v1/shells").json()["shells"]}
    assert world.shell in a_ids and world.b_shell not in a_ids
    assert world.b_shell in b_ids and world.shell not in b_ids
    admin_ids = {s["id"] for s in world.tenancy.admin.get("/v1/shells").json()["shells"]}
    assert not admin_ids & (a_ids | b_ids)  # even the platform admin sees only its own tenant


def test_listing_shows_a_principal_only_what_it_may_see(world: World) -> None:
    own = create_shell(world.victor)
    try:
        seen = {s["id"] for s in world.victor.http.get("/v1/shells").json()["shells"]}
        assert seen == {own, world.shell}  # its own, and the one it was granted
        assert world.nobody.http.get("/v1/shells").status_code == 403
        carol = world.tenancy.caller(world.a, "carol", MEMBER)
        assert carol.http.get("/v1/shells").json()["shells"] == []
        error(carol.http.get(f"/v1/shells/{world.shell}"), 404, "shell_not_found")
    finally:
        world.victor.http.delete(f"/v1/shells/{own}")


def test_a_viewer_reads_but_cannot_exec_wipe_delete_or_open_a_terminal(world: World) -> None:
    http, sid = world.victor.http, world.shell
    assert http.get(f"/v1/shells/{sid}").json()["owner"] == "alice"
    assert http.get(f"/v1/shells/{sid}/events").status_code == 200
    assert http.post(f"/v1/shells/{sid}/actions", json={"capability": "logs"}).status_code == 200
    assert http.get(f"/v1/shells/{sid}/files/list", params={"path": "/workspace"}).status_code == 200
    refused = [
        http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"cmd": ["true"]}),
        http.post(f"/v1/shells/{sid}/actions", json={"capability": "wipe_state"}),
        http.delete(f"/v1/shells/{sid}"),
        http.put(f"/v1/shells/{sid}/files", params={"path": "/workspace/x"}, content=b"x"),
        http.post(f"/v1/shells/{sid}/term", json={}),
        http.post(f"/v1/shells/{sid}/grants", json={"principal": "victor", "role": "operator"}),
    ]
    for r in refused:
        err = error(r, 403, "permission_denied")
        assert err["details"]["role"] == "viewer"
    assert world.alice.http.get(f"/v1/shells/{sid}").json()["state"] == "running"


def test_an_operator_runs_things_but_cannot_delete_or_share(world: World) -> None:
    http, sid = world.otto.http, world.shell
    out = http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"command": "echo $((6*7))"})
    assert out.json()["stdout"] == "42\n"
    assert (
        http.put(f"/v1/shells/{sid}/files", params={"path": "/workspace/otto"}, content=b"hi").status_code
        == 200
    )
    error(http.delete(f"/v1/shells/{sid}"), 403, "permission_denied")
    error(http.get(f"/v1/shells/{sid}/grants"), 403, "permission_denied")
    grants = world.alice.http.get(f"/v1/shells/{sid}/grants").json()["grants"]
    assert {(g["principal"], g["role"]) for g in grants} == {("victor", "viewer"), ("otto", "operator")}


def test_granting_across_tenants_or_to_strangers_is_refused(world: World) -> None:
    r = world.alice.http.post(
        f"/v1/shells/{world.shell}/grants", json={"principal": "b-admin", "role": "viewer"}
    )
    err = error(r, 404, "principal_not_found")
    assert world.b not in r.text
    r = world.alice.http.post(f"/v1/shells/{world.shell}/grants", json={"principal": "zed", "role": "viewer"})
    assert error(r, 404, "principal_not_found")["message"].replace("zed", "X") == err["message"].replace(
        "b-admin", "X"
    )
    error(world.alice.http.delete(f"/v1/shells/{world.shell}/grants/zed"), 404, "grant_not_found")


def test_networks_ports_and_run_follow_the_roles_on_the_shell(world: World) -> None:
    sid, net = world.shell, world.network
    viewer, operator = world.victor.http, world.otto.http
    assert viewer.get(f"/v1/shells/{sid}/network").json()["policy"]["mode"] == "sealed"
    assert viewer.get(f"/v1/shells/{sid}/ports").json() == {"ports": []}
    refused = [
        viewer.put(f"/v1/shells/{sid}/network", json={"mode": "localhost"}),
        viewer.post(f"/v1/shells/{sid}/ports", json={"port": 8000}),
        viewer.delete(f"/v1/shells/{sid}/ports/8000"),
        viewer.post(f"/v1/networks/{net}/shells", json={"shell_id": sid}),
        viewer.post(f"/v1/shells/{sid}/run", params={"wait": "true"}, json={"code": "echo hi"}),
        viewer.post("/v1/templates", json={"from_shell": sid, "name": "viewers-copy:1"}),
    ]
    for r in refused:
        assert error(r, 403, "permission_denied")["details"] == {"role": "viewer", "needs": "operator"}
    ran = operator.post(f"/v1/shells/{sid}/run", params={"wait": "true"}, json={"code": "echo $((6*7))"})
    assert ran.json()["stdout"] == "42\n"
    try:
        assert operator.put(f"/v1/shells/{sid}/network", json={"mode": "localhost"}).status_code == 200
        port = operator.post(f"/v1/shells/{sid}/ports", json={"port": 8000})
        assert port.status_code == 201, port.text
        assert [p["port"] for p in viewer.get(f"/v1/shells/{sid}/ports").json()["ports"]] == [8000]
        assert operator.delete(f"/v1/shells/{sid}/ports/8000").status_code == 204
        joined = operator.post(f"/v1/networks/{net}/shells", json={"shell_id": sid})
        assert sid in {m["id"] for m in joined.json()["shells"]}, joined.text
        b_net = f"bnet{secrets.token_hex(3)}"
        assert world.b_admin.http.post("/v1/networks", json={"name": b_net}).status_code == 201
        try:  # another tenant's shell on one's own network: the shell is missing, as ever
            r = world.b_admin.http.post(f"/v1/networks/{b_net}/shells", json={"shell_id": sid})
            error(r, 404, "shell_not_found")
            assert net not in {n["name"] for n in world.b_admin.http.get("/v1/networks").json()["networks"]}
        finally:
            world.b_admin.http.delete(f"/v1/networks/{b_net}")
        assert operator.delete(f"/v1/networks/{net}/shells/{sid}").status_code == 204
    finally:
        assert operator.put(f"/v1/shells/{sid}/network", json={"mode": "sealed"}).status_code == 200


def test_a_tenants_templates_are_its_own(world: World) -> None:
    name = world.template
    assert name in {t["name"] for t in world.victor.http.get("/v1/templates").json()["templates"]}
    b_list = world.b_admin.http.get("/v1/templates").json()["templates"]
    assert name not in {t["name"] for t in b_list}
    assert {"python:1", "base:1"} <= {t["name"] for t in b_list}  # built-ins are everyone's
    assert world.b_admin.http.get("/v1/templates/python:1").status_code == 200
    error(world.b_admin.http.get(f"/v1/templates/{name}"), 404, "template_not_found")
    r = world.b_admin.http.post("/v1/shells", json={"language": "bash", "template": name})
    error(r, 404, "template_not_found")
    spec = f'name = "globex-copy:1"\nparent = "{name}"\n'
    r = world.b_admin.http.post("/v1/templates/build", params={"wait": "true"}, json={"spec": spec})
    error(r, 404, "template_not_found")
    err = error(world.victor.http.delete(f"/v1/templates/{name}"), 403, "permission_denied")
    assert err["details"] == {"owner": "alice"}  # another member of the tenant: not theirs to delete
    error(world.a_admin.http.delete("/v1/templates/python:1"), 403, "permission_denied")  # built-in
    sid = create_shell(world.victor, template=name)  # but theirs to use
    world.victor.http.delete(f"/v1/shells/{sid}")


# every endpoint against every bad token -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    scopeless: int = 403
    """The status for a token without scopes (most endpoints need one)."""
    foreign: str | None = "shell_not_found"
    """The code for another tenant's object (None: the endpoint names no object)."""
    foreign_status: int = 404
    name: str = "name"
    """Which id fills ``{name}``: a tenant's (``name``), a ``template``'s or a ``network``'s."""


NOWHERE = "127.0.0.1:1/never:1"
"""An image reference no registry answers."""

ENDPOINTS = [
    Endpoint("POST", "/v1/shells", {"language": "bash"}, foreign=None),
    Endpoint("GET", "/v1/shells", foreign=None),
    Endpoint("GET", "/v1/shells/{shell_id}"),
    Endpoint("DELETE", "/v1/shells/{shell_id}"),
    Endpoint("POST", "/v1/shells/{shell_id}/actions", {"capability": "stop"}),
    Endpoint("POST", "/v1/shells/{shell_id}/actions/{action}", {}),
    Endpoint("GET", "/v1/shells/{shell_id}/events"),
    Endpoint("GET", "/v1/snapshots", foreign=None),
    Endpoint("DELETE", "/v1/snapshots/{snapshot_id}", foreign="snapshot_not_found"),
    Endpoint("GET", "/v1/shells/{shell_id}/sync"),
    Endpoint("GET", "/v1/runtimes", scopeless=200, foreign=None),
    Endpoint("POST", "/v1/shells/{shell_id}/exec", {"cmd": ["true"]}),
    Endpoint("POST", "/v1/shells/{shell_id}/run", {"code": "true"}),
    Endpoint("GET", "/v1/shells/{shell_id}/files", params={"path": "/etc/hostname"}),
    Endpoint("PUT", "/v1/shells/{shell_id}/files", params={"path": "/workspace/f"}),
    Endpoint("DELETE", "/v1/shells/{shell_id}/files", params={"path": "/workspace/f"}),
    Endpoint("GET", "/v1/shells/{shell_id}/files/list", params={"path": "/workspace"}),
    Endpoint("GET", "/v1/shells/{shell_id}/files/stat", params={"path": "/workspace"}),
    Endpoint("POST", "/v1/shells/{shell_id}/files/mkdir", params={"path": "/workspace/d"}),
    Endpoint("POST", "/v1/shells/{shell_id}/grants", {"principal": "victor", "role": "viewer"}),
    Endpoint("GET", "/v1/shells/{shell_id}/grants"),
    Endpoint("DELETE", "/v1/shells/{shell_id}/grants/{grantee}"),
    Endpoint("POST", "/v1/shells/{shell_id}/term", {}),
    Endpoint("GET", "/v1/shells/{shell_id}/term"),
    Endpoint("DELETE", "/v1/shells/{shell_id}/term/{credential_id}"),
    Endpoint("GET", "/v1/shells/{shell_id}/network"),
    Endpoint("PUT", "/v1/shells/{shell_id}/network", {"mode": "localhost"}),
    Endpoint("POST", "/v1/shells/{shell_id}/ports", {"port": 8000}),
    Endpoint("GET", "/v1/shells/{shell_id}/ports"),
    Endpoint("DELETE", "/v1/shells/{shell_id}/ports/{port}"),
    Endpoint("POST", "/v1/networks", {"name": "never"}, foreign=None),
    Endpoint("GET", "/v1/networks", foreign=None),
    Endpoint("GET", "/v1/networks/{name}", foreign="network_not_found", name="network"),
    Endpoint("DELETE", "/v1/networks/{name}", foreign="network_not_found", name="network"),
    Endpoint(
        "POST",
        "/v1/networks/{name}/shells",
        {"shell_id": "{shell_id}"},
        foreign="network_not_found",
        name="network",
    ),
    Endpoint("DELETE", "/v1/networks/{name}/shells/{shell_id}", foreign="network_not_found", name="network"),
    Endpoint("GET", "/v1/templates", foreign=None),
    Endpoint("GET", "/v1/templates/{name}", foreign="template_not_found", name="template"),
    Endpoint("DELETE", "/v1/templates/{name}", foreign="template_not_found", name="template"),
    Endpoint("POST", "/v1/templates", {"from_shell": "{shell_id}", "name": "never:1"}),
    Endpoint("POST", "/v1/templates/build", {"builtin": "python:1"}, foreign=None),
    Endpoint("POST", "/v1/tenants", {"name": "never"}, foreign=None),
    Endpoint("GET", "/v1/tenants", foreign=None),
    Endpoint("GET", "/v1/tenants/{name}", foreign="tenant_not_found"),
    Endpoint("GET", "/v1/admin/nodes", foreign=None),
    Endpoint("PATCH", "/v1/tenants/{name}", {"quotas": {}}, foreign="permission_denied", foreign_status=403),
    Endpoint("GET", "/v1/principals", foreign=None),
    Endpoint("POST", "/v1/tokens", {"scopes": ["shells.read"]}, foreign=None),
    Endpoint("GET", "/v1/tokens", scopeless=200, foreign=None),
    Endpoint("DELETE", "/v1/tokens/{token_id}", scopeless=404, foreign="token_not_found"),
    Endpoint("GET", "/v1/audit", foreign=None),
    Endpoint("GET", "/v1/usage", foreign=None),
    Endpoint("GET", "/v1/pricing", foreign=None),
    Endpoint("GET", "/v1/tenants/{name}/billing", foreign="tenant_not_found"),
    Endpoint("PUT", "/v1/tenants/{name}/billing", {"budget_usd": 100}, foreign="tenant_not_found"),
    Endpoint("GET", "/metrics", foreign=None),
    # MCP over HTTP: its tools' own refusals are tool errors, tested in test_mcp.py.
    Endpoint("POST", "/api/agent/invoke", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, foreign=None),
    Endpoint("GET", "/v1/events/stream", foreign=None),
    Endpoint("GET", "/v1/shells/{shell_id}/metrics"),
    Endpoint("POST", "/v1/shells/{shell_id}/timeout", {"timeout_s": 3600}),
    Endpoint("POST", "/v1/shells/{shell_id}/processes", {"cmd": ["true"]}),
    Endpoint("GET", "/v1/shells/{shell_id}/processes"),
    Endpoint("POST", "/v1/shells/{shell_id}/processes/{pid}/attach"),
    Endpoint("POST", "/v1/shells/{shell_id}/processes/{pid}/signal", {}),
    Endpoint("POST", "/v1/shells/{shell_id}/processes/{pid}/stdin"),
    Endpoint("POST", "/v1/shells/{shell_id}/processes/{pid}/stdin/close"),
    Endpoint("POST", "/v1/secrets", {"name": "NEVER", "value": "x", "hosts": ["example.org"]}, foreign=None),
    Endpoint("GET", "/v1/secrets", foreign=None),
    Endpoint("GET", "/v1/secrets/{name}", foreign="secret_not_found", name="secret"),
    Endpoint("PUT", "/v1/secrets/{name}", {"value": "y"}, foreign="secret_not_found", name="secret"),
    Endpoint("DELETE", "/v1/secrets/{name}", foreign="secret_not_found", name="secret"),
    Endpoint("POST", "/v1/webhooks", {"url": "http://198.51.100.11/", "events": ["*"]}, foreign=None),
    Endpoint("GET", "/v1/webhooks", foreign=None),
    Endpoint("GET", "/v1/webhooks/{webhook_id}", foreign="webhook_not_found"),
    Endpoint("DELETE", "/v1/webhooks/{webhook_id}", foreign="webhook_not_found"),
    Endpoint("GET", "/v1/webhooks/{webhook_id}/deliveries", foreign="webhook_not_found"),
    Endpoint("POST", "/v1/webhooks/{webhook_id}/test", foreign="webhook_not_found"),
    Endpoint("POST", "/v1/templates/import", {"image": NOWHERE, "name": "never:1"}, foreign=None),
    Endpoint("POST", "/v1/templates/export", {"template": "{template}", "image": NOWHERE},
             foreign="template_not_found"),
    Endpoint("POST", "/v1/templates/dockerfile", params={"name": "never:1"}, foreign=None),
    Endpoint("POST", "/v1/volumes", {"name": "never", "size_gib": 1}, foreign=None),
    Endpoint("GET", "/v1/volumes", foreign=None),
    Endpoint("GET", "/v1/volumes/{name}", foreign="volume_not_found", name="volume"),
    Endpoint("DELETE", "/v1/volumes/{name}", foreign="volume_not_found", name="volume"),
    Endpoint("POST", "/v1/admin/nodes/{name}/drain", foreign="permission_denied", foreign_status=403),
    Endpoint("POST", "/v1/admin/nodes/{name}/uncordon", foreign="permission_denied", foreign_status=403),
    Endpoint("POST", "/v1/shells/{shell_id}/recover"),
    Endpoint(
        "POST",
        "/v1/bucket-credentials",
        {"name": "never", "access_key_id": "AKID", "secret_access_key": "x"},
        foreign=None,
    ),
    Endpoint("GET", "/v1/bucket-credentials", foreign=None),
    Endpoint(
        "DELETE",
        "/v1/bucket-credentials/{name}",
        foreign="bucket_credentials_not_found",
        name="bucket_credentials",
    ),
]  # fmt: skip


def test_the_table_covers_every_endpoint(server: ServerProcess) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} - {("GET", "/v1/info")}
    assert served == {(e.method, e.path) for e in ENDPOINTS}


def _call(http: httpx.Client, endpoint: Endpoint, ids: dict[str, str]) -> httpx.Response:
    """The endpoint's request with ``ids`` filled into its path and its body's strings."""
    fill = ids | {"name": ids[endpoint.name]}
    body = endpoint.body and {
        k: v.format(**fill) if isinstance(v, str) else v for k, v in endpoint.body.items()
    }
    return http.request(endpoint.method, endpoint.path.format(**fill), json=body, params=endpoint.params)


def _ids(world: World, shell: str) -> dict[str, str]:
    return {
        "shell_id": shell,
        "grantee": "victor",
        "credential_id": "tc_" + "0" * 20,
        "name": world.a,
        "template": world.template,
        "network": world.network,
        "token_id": world.victor.token_id,
        "port": "8000",
        "action": "stop",
        "pid": "7777777",  # long: the scrub below replaces every id value in the answers
        "secret": world.secret,
        "webhook_id": world.webhook,
        "snapshot_id": world.snapshot,
        "volume": world.volume,
        "bucket_credentials": world.bucket_credentials,
    }


def _missing_ids(world: World) -> dict[str, str]:
    """Ids of the same shapes that name nothing at all."""
    return _ids(world, new_id("sh")) | {
        "name": "no-such-tenant",
        "template": "no-such-template:1",
        "network": "nosuchnet",
        "token_id": new_id("tok"),
        "secret": "NO_SUCH_SECRET",
        "webhook_id": new_id("wh"),
        "snapshot_id": new_id("snap"),
        "volume": "no-such-volume",
        "bucket_credentials": "no-such-credentials",
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_missing_malformed_expired_and_revoked_tokens_are_401(
    world: World, server: ServerProcess, endpoint: Endpoint
) -> None:
    ids = _ids(world, world.shell)
    bad = {
        None: "unauthenticated",
        "shl_forged_token": "unauthenticated",
        world.expired: "credential_expired",
        world.revoked: "credential_revoked",
    }
    for token, code in bad.items():
        with world.tenancy.client(token) as http:
            r = _call(http, endpoint, ids)
        error(r, 401, code)
        assert r.headers["www-authenticate"] == "Bearer"
        assert_leaks_nothing(r, server, world.shell)
    with world.tenancy.client(None, Authorization="Basic YWxpY2U6c2VjcmV0") as http:
        error(_call(http, endpoint, ids), 401, "unauthenticated")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_a_token_without_the_scope_is_403_for_everything_but_its_own_tokens(
    world: World, server: ServerProcess, endpoint: Endpoint
) -> None:
    r = _call(world.nobody.http, endpoint, _ids(world, world.shell))
    assert r.status_code == endpoint.scopeless, r.text
    if r.status_code == 403:
        assert r.json()["error"]["code"] == "permission_denied"
    assert_leaks_nothing(r, server, world.b)


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.foreign], ids=lambda e: f"{e.method} {e.path}"
)
def test_another_tenants_objects_are_answered_like_missing_ones(
    world: World, server: ServerProcess, endpoint: Endpoint
) -> None:
    assert endpoint.foreign is not None
    foreign = _call(world.b_admin.http, endpoint, _ids(world, world.shell))
    missing_ids = _missing_ids(world)
    missing = _call(world.b_admin.http, endpoint, missing_ids)
    assert foreign.status_code == missing.status_code == endpoint.foreign_status
    assert foreign.json()["error"]["code"] == endpoint.foreign
    scrub = {
        **dict.fromkeys(_ids(world, world.shell).values(), "ID"),
        **dict.fromkeys(missing_ids.values(), "ID"),
    }
    bodies = []
    for r in (foreign, missing):
        text = r.text
        for value, placeholder in scrub.items():
            text = text.replace(value, placeholder)
        bodies.append(text)
    assert bodies[0] == bodies[1]
    asked = str(foreign.request.url)  # what the caller typed may be echoed; nothing else may be
    assert_leaks_nothing(foreign, server, *(n for n in (world.a, "alice", "victor") if n not in asked))
    assert world.alice.http.get(f"/v1/shells/{world.shell}").json()["state"] == "running"


def test_probing_ids_tells_nothing(world: World) -> None:
    deleted = create_shell(world.b_admin)
    assert world.b_admin.http.delete(f"/v1/shells/{deleted}").status_code == 204
    probes = [
        world.shell,
        deleted,
        new_id("sh"),
        "sh_short",
        "not-an-id",
        "sh_UPPER.case",
        "sh_" + "z" * 60,
    ]
    bodies = set()
    for probe in probes:
        r = world.b_admin.http.get(f"/v1/shells/{probe}")
        assert r.status_code == 404
        bodies.add(r.text.replace(probe, "ID"))
    assert len(bodies) == 1


def test_ids_are_unguessable(world: World) -> None:
    ids = [create_shell(world.alice) for _ in range(2)]
    try:
        assert all(len(i) == len("sh_") + 20 for i in ids)  # ~103 random bits each
        assert ids[0][3:] != ids[1][3:]
    finally:
        for sid in ids:
            world.alice.http.delete(f"/v1/shells/{sid}")


# quotas and rate limits -----------------------------------------------------------------------------


def test_quotas_are_typed_403s_naming_the_limit(world: World) -> None:
    tenancy = world.tenancy
    small = tenancy.tenant("small", max_shells=1, max_vcpus=1, max_snapshots=1)
    owner = tenancy.caller(small, "owner", MEMBER)
    err = error(
        owner.http.post("/v1/shells", json={"language": "bash", "shape": "s-2vcpu-2gb"}),
        403,
        "quota_exceeded",
    )
    assert (err["details"]["limit"], err["details"]["value"]) == ("max_vcpus", 1)
    sid = create_shell(owner)
    try:
        err = error(owner.http.post("/v1/shells", json={"language": "bash"}), 403, "quota_exceeded")
        assert err["details"] == {"limit": "max_shells", "value": 1, "used": 1}
        snap = owner.http.post(f"/v1/shells/{sid}/actions", json={"capability": "snapshot"})
        assert snap.status_code == 200, snap.text
        again = owner.http.post(f"/v1/shells/{sid}/actions", json={"capability": "snapshot"})
        assert error(again, 403, "quota_exceeded")["details"]["limit"] == "max_snapshots"
        usage = owner.http.get(f"/v1/tenants/{small}")
        error(usage, 403, "permission_denied")  # tenant admins only
        usage = tenancy.admin.get(f"/v1/tenants/{small}").json()
        assert usage["usage"] == {"shells": 1, "vcpus": 1.0, "memory_mib": 512, "snapshots": 1}
        assert usage["quotas"]["max_shells"] == 1
    finally:
        owner.http.delete(f"/v1/shells/{sid}")
    assert owner.http.post("/v1/shells", json={"language": "bash", "shape": "s-2vcpu-2gb"}).status_code == 403
    raised = tenancy.admin.patch(f"/v1/tenants/{small}", json={"quotas": {"max_vcpus": 4}})
    assert raised.json()["quotas"]["max_vcpus"] == 4
    sid = create_shell(owner, shape="s-2vcpu-2gb")
    owner.http.delete(f"/v1/shells/{sid}")


def test_the_rate_limit_is_a_typed_429_per_token(world: World) -> None:
    tenancy = world.tenancy
    slow = tenancy.tenant("slow", requests_per_s=0.2, burst=3)
    first = tenancy.caller(slow, "first", MEMBER)
    second = tenancy.caller(slow, "second", MEMBER)
    assert [first.http.get("/v1/shells").status_code for _ in range(3)] == [200, 200, 200]
    r = first.http.get("/v1/shells")
    err = error(r, 429, "rate_limited")
    assert (err["details"]["limit"], err["details"]["value"], err["details"]["burst"]) == (
        "requests_per_s",
        0.2,
        3,
    )
    assert 1 <= int(r.headers["retry-after"]) <= 5
    assert second.http.get("/v1/shells").status_code == 200  # its own bucket


# the audit trail ------------------------------------------------------------------------------------


def test_every_request_is_on_the_record_with_door_request_id_and_outcome(world: World) -> None:
    sid = world.shell
    headers = {"X-Shells-Door": "sdk", "X-Request-Id": "trace-42"}
    assert world.alice.http.get(f"/v1/shells/{sid}", headers=headers).headers["x-request-id"] == "trace-42"
    ran = world.alice.http.post(
        f"/v1/shells/{sid}/exec",
        params={"wait": "true"},
        json={"cmd": ["true"]},
        headers={"X-Shells-Door": "cli"},
    )
    exec_request = ran.headers["x-request-id"]
    denied = world.victor.http.delete(f"/v1/shells/{sid}", headers={"X-Shells-Door": "console"})
    probe = world.b_admin.http.get(f"/v1/shells/{sid}").headers["x-request-id"]  # from the other tenant
    error(world.alice.http.get("/v1/shells", headers={"X-Shells-Door": "backdoor"}), 400, "invalid_request")
    trail = world.a_admin.http.get("/v1/audit", params={"shell": sid}).json()["events"]
    by_request = {e["request_id"]: e for e in trail}
    read = by_request["trace-42"]
    fields = ("door", "principal", "kind", "action", "target", "outcome")
    assert tuple(read[f] for f in fields) == ("sdk", "alice", "read", "get_shell", sid, "ok")
    execs = [e for e in trail if e["request_id"] == exec_request]
    assert len(execs) == 1  # one row per exec, as before
    assert (execs[0]["door"], execs[0]["action"], execs[0]["details"]["exit_code"]) == ("cli", "exec", 0)
    refused = by_request[denied.headers["x-request-id"]]
    assert (refused["door"], refused["principal"], refused["outcome"]) == (
        "console",
        "victor",
        "permission_denied",
    )
    assert all(e["principal"] != "b-admin" for e in trail)  # the probe is in globex's trail, not acme's
    probes = world.b_admin.http.get("/v1/audit", params={"actor": "b-admin", "shell": sid}).json()["events"]
    assert [e["outcome"] for e in probes if e["request_id"] == probe] == ["shell_not_found"]
    assert all(e["id"] and e["at"] for e in trail)


def test_the_audit_trail_filters_and_is_for_tenant_admins(world: World) -> None:
    error(world.alice.http.get("/v1/audit"), 403, "permission_denied")
    since = world.a_admin.http.get("/v1/audit").json()["events"][-1]["at"]
    world.alice.http.get(f"/v1/shells/{world.shell}/files/stat", params={"path": "/workspace"})
    newer = world.a_admin.http.get(
        "/v1/audit", params={"since": since, "actor": "alice", "action": "stat_file"}
    )
    assert [e["action"] for e in newer.json()["events"]] == ["stat_file"]
    error(world.a_admin.http.get("/v1/audit", params={"since": "last tuesday"}), 400, "invalid_request")
    assert (
        world.b_admin.http.get("/v1/audit", params={"shell": world.shell, "actor": "alice"}).json()["events"]
        == []
    )


def test_a_shells_activity_marks_destructive_actions(world: World) -> None:
    sid = create_shell(world.alice)
    for capability in ("stop", "start", "wipe_state"):
        r = world.alice.http.post(f"/v1/shells/{sid}/actions", json={"capability": capability})
        assert r.status_code == 200, r.text
    assert world.alice.http.delete(f"/v1/shells/{sid}").status_code == 204
    events = world.a_admin.http.get("/v1/audit", params={"shell": sid}).json()["events"]
    marked = {(e["action"], e["outcome"]) for e in events if e["destructive"]}
    assert {("stop", "stopped"), ("wipe_state", "ok"), ("delete", "ok")} <= marked
    assert not any(e["destructive"] for e in events if e["action"] in ("create", "start"))


def test_the_mcp_door_needs_the_agent_entitlement(world: World) -> None:
    mcp = {"X-Shells-Door": "mcp"}
    err = error(world.alice.http.get("/v1/shells", headers=mcp), 403, "permission_denied")
    assert err["details"] == {"scope": "shells.agent.invoke"}
    agent = world.tenancy.caller(world.a, "agent", [*MEMBER, "shells.agent.invoke"])
    assert agent.http.get("/v1/shells", headers=mcp).status_code == 200
    assert agent.http.get("/v1/shells").status_code == 200


def test_requests_without_a_tenant_are_logged_not_stored(world: World, server: ServerProcess) -> None:
    with world.tenancy.client("shl_nobody_knows", **{"X-Request-Id": "anon-probe-7"}) as http:
        error(http.get(f"/v1/shells/{world.shell}"), 401, "unauthenticated")
    wait_until(lambda: "anon-probe-7" in server.log_tail(20000), 5, "the refused request in the server log")
    trail = world.a_admin.http.get("/v1/audit", params={"shell": world.shell}).json()["events"]
    assert all(e["request_id"] != "anon-probe-7" for e in trail)
