"""The control layer's tenancy rules against a real (SQLite) store, without a backend: who may mint
which token, who sees and may do what to which shell, quotas, rate limits, and the audit search.
Shells are plain records here; the end-to-end tests drive the same rules with running shells."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shells.control import auth
from shells.control.service import Control
from shells.control.tokens import TokenRequest
from shells.domain import access
from shells.domain.audit import AuditQuery
from shells.domain.errors import (
    CredentialExpired,
    CredentialRevoked,
    InvalidRequest,
    PermissionDenied,
    PrincipalNotFound,
    QuotaExceeded,
    RateLimited,
    ShellNotFound,
    ShellsError,
    SnapshotNotFound,
    TenantNotFound,
    TokenNotFound,
    Unauthenticated,
)
from shells.domain.ids import new_id
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess
from shells.domain.principal import Principal
from shells.domain.shapes import get_shape
from shells.domain.shell import ShellRecord, SnapshotRecord
from shells.domain.states import ShellState
from shells.domain.tenancy import TermCredentialRecord, TokenRecord
from shells.runtime.network.dataplane import HostNetwork
from shells.settings import Settings
from shells.store.repository import Store

EVERYTHING = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files",
              "shells.term", "tenant.admin"]  # fmt: skip
MEMBER = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files",
          "shells.term"]  # fmt: skip


@dataclass
class World:
    control: Control
    admin: Principal

    @property
    def store(self) -> Store:
        return self.control.ctx.store

    def login(self, token: str) -> Principal:
        return self.control.auth.principal(f"Bearer {token}")

    def mint(self, by: Principal, **body: object) -> tuple[str, Principal]:
        body.setdefault("scopes", MEMBER)
        record, token = self.control.tokens.create(by, TokenRequest.parse(body))
        return record.id, self.login(token)

    def tenant(self, name: str, **quotas: float) -> Principal:
        """A new tenant and its admin principal."""
        self.control.tenancy.create_tenant(self.admin, {"name": name, "quotas": quotas})
        return self.mint(self.admin, tenant=name, principal=f"{name}-admin", scopes=EVERYTHING)[1]

    def shell(self, owner: Principal, shape: str = "s-1vcpu-512mb", **fields: object) -> ShellRecord:
        now = datetime.now(UTC)
        record = ShellRecord(
            id=new_id("sh"),
            tenant=owner.tenant,
            owner=owner.id,
            name="x",
            state=ShellState.RUNNING,
            runtime=Runtime.CONTAINER,
            language=Language.BASH,
            template="base",
            network=NetworkAccess(),
            shape=shape,
            region="local",
            created_at=now,
            updated_at=now,
        )
        for key, value in fields.items():
            setattr(record, key, value)
        self.store.add_shell(record)
        return record


@pytest.fixture
def world(tmp_path: Path, migrated_url: str) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path, database_url=migrated_url)
    store = Store(settings.db_url)
    store.migrate()
    control = Control(settings, store, [], HostNetwork(settings))
    token = control.auth.ensure_admin_token(settings.admin_token_path)
    try:
        yield World(control, control.auth.principal(f"Bearer {token}"))
    finally:
        store.close()


def same_answer(a: ShellsError, b: ShellsError, *ids: str) -> None:
    """Two refusals a caller cannot tell apart, but for the id they asked about."""
    first, second = a.to_dict(), b.to_dict()
    for key in ("message", "details"):
        first[key] = str(first[key]).replace(ids[0], "ID")
        second[key] = str(second[key]).replace(ids[1], "ID")
    assert first == second


# tokens -----------------------------------------------------------------------------------------------


def test_the_bootstrap_admin_is_a_platform_admin_of_the_default_tenant(world: World) -> None:
    assert (world.admin.id, world.admin.tenant) == ("admin", "default")
    assert auth.is_platform_admin(world.admin)
    assert {"platform.admin", "tenant.admin", "shells.agent.invoke"} <= world.admin.scopes
    path = world.control.ctx.settings.admin_token_path
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    assert world.control.auth.ensure_admin_token(path) == token  # stable across starts
    assert world.admin.token_id is not None
    world.control.tokens.revoke(world.admin, world.admin.token_id)  # locked out, until the next start
    with pytest.raises(CredentialRevoked):
        world.login(token)
    fresh = world.control.auth.ensure_admin_token(path)
    assert fresh != token and fresh == path.read_text().strip()
    assert auth.is_platform_admin(world.login(fresh))


def test_tenant_admins_mint_only_in_their_tenant_and_only_what_they_hold(world: World) -> None:
    alice = world.tenant("acme")
    world.tenant("globex")
    _, bob = world.mint(alice, principal="bob", scopes=["shells.read"])
    assert (bob.tenant, bob.id, bob.scopes) == ("acme", "bob", frozenset({"shells.read"}))
    with pytest.raises(PermissionDenied, match=re.escape("platform.admin")):
        world.mint(alice, principal="eve", scopes=["platform.admin"])
    with pytest.raises(TenantNotFound) as other:
        world.mint(alice, tenant="globex", principal="eve")
    with pytest.raises(TenantNotFound) as missing:
        world.mint(alice, tenant="nowhere", principal="eve")
    same_answer(other.value, missing.value, "globex", "nowhere")
    with pytest.raises(InvalidRequest, match="only be given in the 'default' tenant"):
        world.mint(world.admin, tenant="acme", principal="root", scopes=["platform.admin"])


def test_members_mint_only_narrower_shorter_tokens_for_themselves(world: World) -> None:
    alice = world.tenant("acme")
    _, bob = world.mint(alice, principal="bob", scopes=["shells.read", "shells.exec"], expires_in_s=60)
    with pytest.raises(PermissionDenied, match="Only tenant admins"):
        world.mint(bob, principal="carol", scopes=["shells.read"])
    with pytest.raises(PermissionDenied, match=re.escape("shells.destroy")):
        world.mint(bob, scopes=["shells.read", "shells.destroy"], expires_in_s=30)
    with pytest.raises(InvalidRequest, match="expire no later"):
        world.mint(bob, scopes=["shells.read"])
    with pytest.raises(InvalidRequest, match="expire no later"):
        world.mint(bob, scopes=["shells.read"], expires_in_s=120)
    _, narrow = world.mint(bob, scopes=["shells.read"], expires_in_s=30)
    assert (narrow.id, narrow.scopes) == ("bob", frozenset({"shells.read"}))


def test_token_listings_are_scoped_and_never_show_a_secret(world: World) -> None:
    alice = world.tenant("acme")
    bob_id, bob = world.mint(alice, principal="bob")
    world.mint(alice, principal="carol")
    everyone = {t.principal for t in world.control.tokens.list(alice)}
    assert everyone == {"acme-admin", "bob", "carol"}
    assert [t.id for t in world.control.tokens.list(bob)] == [bob_id]
    assert {t.principal for t in world.control.tokens.list(world.admin, "acme")} == everyone
    with pytest.raises(TenantNotFound):
        world.control.tokens.list(alice, "default")
    public = world.control.tokens.list(alice)[0].to_public()
    assert set(public) == {"id", "tenant", "principal", "prefix", "scopes", "created_at", "expires_at",
                           "revoked_at", "last_used_at"}  # fmt: skip


def test_revoked_and_expired_tokens_stop_at_once(world: World) -> None:
    alice = world.tenant("acme")
    bob_record, token = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "bob", "scopes": MEMBER})
    )
    bob = world.login(token)
    with pytest.raises(TokenNotFound):
        world.control.tokens.revoke(bob, world.control.tokens.list(alice)[0].id)  # not his to revoke
    world.control.tokens.revoke(alice, bob_record.id)
    with pytest.raises(CredentialRevoked):
        world.login(token)
    _, short = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "dan", "scopes": MEMBER, "expires_in_s": 1})
    )
    world.login(short)
    time.sleep(1.1)
    with pytest.raises(CredentialExpired):
        world.login(short)
    for bad in (None, "", "Basic abc", "Bearer", "Bearer shl_nope_nope", f"Bearer {token}x"):
        with pytest.raises(Unauthenticated):
            world.control.auth.principal(bad)


def test_a_token_is_read_from_the_store_once_a_second_and_checked_on_every_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = world.tenant("acme")
    record, token = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "eve", "scopes": MEMBER, "expires_in_s": 2})
    )
    reads: list[str] = []
    find = world.store.tenancy.find_token

    def counted(token_hash: str) -> TokenRecord | None:
        reads.append(token_hash)
        return find(token_hash)

    monkeypatch.setattr(world.store.tenancy, "find_token", counted)
    for _ in range(5):
        world.login(token)
    assert len(reads) == 1
    time.sleep(auth.TOKEN_CACHE_S + 0.05)
    world.login(token)
    assert len(reads) == 2
    time.sleep(1.1)  # expired while cached: refused all the same
    with pytest.raises(CredentialExpired):
        world.login(token)
    assert record.id


def test_revoking_a_token_revokes_the_terminal_credentials_it_minted(world: World) -> None:
    alice = world.tenant("acme")
    record, token = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "bob", "scopes": MEMBER})
    )
    bob = world.login(token)
    shell = world.shell(bob)
    now = datetime.now(UTC)
    cred = TermCredentialRecord(
        "tc_x", "acme", shell.id, "bob", record.id, "abcd", now, now + timedelta(minutes=5)
    )
    draft = world.control.ctx.draft(bob, shell, kind="term", action="term.mint")
    world.store.tenancy.add_term_credential(cred, "hash-of-secret", draft)
    world.control.tokens.revoke(alice, record.id)
    revoked = world.store.tenancy.get_term_credential("tc_x")
    assert revoked is not None and revoked.revoked_at is not None


def test_last_use_is_recorded_without_a_write_per_request(world: World) -> None:
    alice = world.tenant("acme")
    record, token = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "bob", "scopes": MEMBER})
    )
    world.login(token)
    first = world.store.tenancy.get_token(record.id)
    assert first is not None and first.last_used_at is not None
    world.login(token)
    assert world.store.tenancy.get_token(record.id) == first  # debounced: the same time, no write


def test_each_token_has_its_tenants_rate_limit(world: World) -> None:
    alice = world.tenant("slow", requests_per_s=0.5, burst=2)
    _, token = world.control.tokens.create(alice, TokenRequest.parse({"principal": "bob", "scopes": MEMBER}))
    world.login(token)
    world.login(token)
    with pytest.raises(RateLimited) as caught:
        world.login(token)
    assert caught.value.details["limit"] == "requests_per_s"
    assert (caught.value.details["value"], caught.value.details["burst"]) == (0.5, 2)
    assert 0 < caught.value.details["retry_after_s"] <= 2
    _, other = world.control.tokens.create(
        alice, TokenRequest.parse({"principal": "carol", "scopes": MEMBER})
    )
    world.login(other)  # another token of the tenant has its own bucket


# shells: visibility and roles ---------------------------------------------------------------------------


def test_a_shell_is_seen_by_its_owner_tenant_admins_and_grantees_only(world: World) -> None:
    alice = world.tenant("acme")
    _, bob = world.mint(alice, principal="bob")
    _, carol = world.mint(alice, principal="carol")
    globex = world.tenant("globex")
    shell = world.shell(bob)
    own = world.shell(carol)
    world.shell(bob, pooled=True)
    lifecycle = world.control.shells
    assert [s.id for s in lifecycle.list(bob)] == [shell.id]
    assert len(lifecycle.list(alice)) == 2
    assert lifecycle.get(alice, shell.id).id == shell.id
    with pytest.raises(ShellNotFound) as hidden:
        lifecycle.get(carol, shell.id)
    with pytest.raises(ShellNotFound) as foreign:
        lifecycle.get(globex, shell.id)
    with pytest.raises(ShellNotFound) as missing:
        lifecycle.get(carol, "sh_doesnotexist000000")
    same_answer(hidden.value, missing.value, shell.id, "sh_doesnotexist000000")
    same_answer(foreign.value, missing.value, shell.id, "sh_doesnotexist000000")
    world.control.tenancy.grant(bob, shell.id, {"principal": "carol", "role": "viewer"})
    assert {s.id for s in lifecycle.list(carol)} == {shell.id, own.id}
    assert world.control.events(carol, shell.id)[-1].action == "grant"


def test_viewers_read_operators_act_owners_destroy_and_share(world: World) -> None:
    alice = world.tenant("acme")
    _, bob = world.mint(alice, principal="bob")
    _, carol = world.mint(alice, principal="carol")
    shell = world.shell(bob)
    store = world.store
    world.control.tenancy.grant(bob, shell.id, {"principal": "carol", "role": "viewer"})
    assert auth.authorize(store, carol, shell.id, access.READ).id == shell.id
    assert auth.authorize(store, carol, shell.id, access.FILES_READ).id == shell.id
    for permission in (
        access.EXEC,
        access.FILES_WRITE,
        access.ACT,
        access.TERM,
        access.DESTROY,
        access.SHARE,
    ):
        with pytest.raises(PermissionDenied) as caught:
            auth.authorize(store, carol, shell.id, permission)
        assert caught.value.details["role"] == "viewer"
    world.control.tenancy.grant(alice, shell.id, {"principal": "carol", "role": "operator"})
    for permission in (access.EXEC, access.FILES_WRITE, access.ACT, access.TERM):
        auth.authorize(store, carol, shell.id, permission)
    for permission in (access.DESTROY, access.SHARE):
        with pytest.raises(PermissionDenied, match="needs owner"):
            auth.authorize(store, carol, shell.id, permission)
    with pytest.raises(PermissionDenied):
        world.control.tenancy.grant(carol, shell.id, {"principal": "carol", "role": "operator"})
    world.control.tenancy.revoke_grant(bob, shell.id, "carol")
    with pytest.raises(ShellNotFound):
        auth.authorize(store, carol, shell.id, access.READ)


def test_a_token_without_the_scope_is_refused_before_the_shell_is_looked_at(world: World) -> None:
    alice = world.tenant("acme")
    _, reader = world.mint(alice, principal="reader", scopes=["shells.read"])
    shell = world.shell(alice)
    with pytest.raises(PermissionDenied, match=re.escape("shells.exec")) as exists:
        auth.authorize(world.store, reader, shell.id, access.EXEC)
    with pytest.raises(PermissionDenied, match=re.escape("shells.exec")) as missing:
        auth.authorize(world.store, reader, "sh_doesnotexist000000", access.EXEC)
    assert exists.value.to_dict() == missing.value.to_dict()


def test_grants_only_go_to_principals_of_the_same_tenant(world: World) -> None:
    alice = world.tenant("acme")
    world.tenant("globex")
    shell = world.shell(alice)
    with pytest.raises(PrincipalNotFound):
        world.control.tenancy.grant(alice, shell.id, {"principal": "globex-admin", "role": "viewer"})
    with pytest.raises(PrincipalNotFound):
        world.control.tenancy.grant(alice, shell.id, {"principal": "nobody", "role": "viewer"})
    with pytest.raises(InvalidRequest, match="role"):
        world.control.tenancy.grant(alice, shell.id, {"principal": "acme-admin", "role": "root"})


def test_snapshots_follow_their_shells_visibility(world: World) -> None:
    alice = world.tenant("acme")
    _, bob = world.mint(alice, principal="bob")
    _, carol = world.mint(alice, principal="carol")
    shell = world.shell(bob)
    snap = SnapshotRecord(
        "snap_1", "acme", shell.id, Runtime.CONTAINER, "base", Language.BASH, datetime.now(UTC)
    )
    world.store.add_snapshot(snap, world.control.ctx.draft(bob, shell, kind="action", action="snapshot"))
    assert [s.id for s in world.control.snapshots(bob)] == ["snap_1"]
    assert [s.id for s in world.control.snapshots(alice)] == ["snap_1"]
    assert world.control.snapshots(carol) == []
    with pytest.raises(SnapshotNotFound):
        auth.find_snapshot(world.store, carol, "snap_1")
    assert auth.find_snapshot(world.store, bob, "snap_1").id == "snap_1"


# quotas and audit ---------------------------------------------------------------------------------------


def test_quotas_count_what_the_tenant_holds(world: World) -> None:
    alice = world.tenant("small", max_shells=2, max_vcpus=3, max_memory_mib=2560, max_snapshots=1)
    quotas = world.control.ctx.quotas
    world.shell(alice, shape="s-2vcpu-2gb")
    with pytest.raises(QuotaExceeded) as vcpus:
        quotas.check_shell("small", get_shape("s-2vcpu-2gb"))
    assert vcpus.value.details == {"limit": "max_vcpus", "value": 3, "used": 2.0}
    with pytest.raises(QuotaExceeded) as memory:
        quotas.check_shell("small", get_shape("s-1vcpu-1gb"))
    assert memory.value.details["limit"] == "max_memory_mib"
    world.shell(alice)
    with pytest.raises(QuotaExceeded) as count:
        quotas.check_shell("small", get_shape("s-1vcpu-512mb"))
    assert count.value.details == {"limit": "max_shells", "value": 2, "used": 2}
    world.shell(alice, state=ShellState.DELETED)  # deleted shells hold nothing
    with (
        quotas.snapshot_slot("small"),
        pytest.raises(QuotaExceeded, match="max_snapshots = 1"),
        quotas.snapshot_slot("small"),
    ):
        pass
    with quotas.snapshot_slot("small"):  # the slot was given back
        pass
    usage = world.control.tenancy.get_tenant(alice, "small")["usage"]
    assert usage == {"shells": 2, "vcpus": 3.0, "memory_mib": 2560, "snapshots": 0}


def test_the_audit_trail_is_for_tenant_admins_and_stays_in_the_tenant(world: World) -> None:
    alice = world.tenant("acme")
    _, bob = world.mint(alice, principal="bob")
    globex = world.tenant("globex")
    shell = world.shell(bob)
    world.control.tenancy.grant(bob, shell.id, {"principal": "acme-admin", "role": "viewer"})
    with pytest.raises(PermissionDenied, match=re.escape("tenant.admin")):
        world.control.audit.search(bob, AuditQuery())
    trail = world.control.audit.search(alice, AuditQuery())
    assert {e.action for e in trail} >= {"tenant.create", "token.create", "grant"}
    assert all(e.target != shell.id for e in world.control.audit.search(globex, AuditQuery()))
    by_bob = world.control.audit.search(alice, AuditQuery(actor="bob", shell=shell.id))
    assert [e.action for e in by_bob] == ["grant"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert world.control.audit.search(alice, AuditQuery(since=future)) == []
