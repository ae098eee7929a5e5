"""A shell's create-time environment is its creator's secret: no door shows the values back."""

from __future__ import annotations

import secrets

from .tenancy import MEMBER, Tenancy, create_shell


def test_no_one_reads_a_shells_env_values_back(tenancy: Tenancy) -> None:
    tenant = tenancy.tenant("env")
    alice = tenancy.caller(tenant, "alice", MEMBER)
    viewer = tenancy.caller(tenant, "victor", ["shells.read"])
    value = "s3cr3t-" + secrets.token_hex(8)
    sid = create_shell(alice, env={"API_KEY": value, "MODE": "x"})
    try:
        grant = {"principal": "victor", "role": "viewer"}
        assert alice.http.post(f"/v1/shells/{sid}/grants", json=grant).status_code == 201
        seen = [
            viewer.http.get(f"/v1/shells/{sid}"),
            viewer.http.get("/v1/shells"),
            viewer.http.get(f"/v1/shells/{sid}/events"),
            alice.http.get(f"/v1/shells/{sid}"),
            alice.http.get("/v1/shells"),
            tenancy.admin.get("/v1/audit", params={"shell": sid}),
        ]
        for r in seen:
            assert r.status_code == 200, r.text
            assert value not in r.text, f"{r.request.url} shows the env value"
        assert viewer.http.get(f"/v1/shells/{sid}").json()["env_names"] == ["API_KEY", "MODE"]
        out = alice.http.post(
            f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"command": "echo $API_KEY"}
        )
        assert out.json()["stdout"] == value + "\n"  # the shell itself still has it
    finally:
        alice.http.delete(f"/v1/shells/{sid}")
