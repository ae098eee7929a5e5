"""Metering end to end, against the real server and real container shells: usage follows the shells'
state changes to the microsecond, CSV and JSON agree, pricing shows the matrix, ``/metrics`` parses
as Prometheus text, a budget cap stops a tenant's shells and refuses new ones, and a ``kill -9`` of
the server neither loses nor doubles a running shell's interval."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ..support.waiting import wait_until
from .harness import ServerProcess, running_server
from .tenancy import ADMIN, Tenancy, create_shell, error


def running_time(http: httpx.Client, shell_id: str) -> float:
    """Seconds from the shell's one start to its one stop, by the times of their events."""
    events = http.get(f"/v1/shells/{shell_id}/events").json()["events"]
    at = {e["outcome"]: datetime.fromisoformat(e["at"]) for e in events if e["kind"] in ("state", "action")}
    return (at["stopped"] - at["running"]).total_seconds()


def billed_seconds(http: httpx.Client, shell_id: str, **params: str) -> float:
    lines = http.get("/v1/usage", params={"group_by": "shell", **params}).json()["lines"]
    return float(sum(line["seconds"] for line in lines if line["key"] == shell_id))


def test_usage_follows_the_shells_state_changes(tenancy: Tenancy) -> None:
    tenant = tenancy.tenant("meter")
    alice = tenancy.caller(tenant, "alice", ADMIN)
    bob = tenancy.caller(tenant, "bob", ["shells.read", "shells.create", "shells.act"])
    a = create_shell(alice)
    b = create_shell(bob, shape="s-2vcpu-2gb")
    time.sleep(1.5)
    for http, sid in ((alice.http, a), (bob.http, b)):
        r = http.post(f"/v1/shells/{sid}/actions", json={"capability": "stop"})
        assert r.status_code == 200, r.text
    expected = running_time(alice.http, a)
    assert expected > 1.4
    assert billed_seconds(alice.http, a) == pytest.approx(expected, abs=0.002)
    time.sleep(0.5)
    assert billed_seconds(alice.http, a) == pytest.approx(expected, abs=0.002)  # stopped: no more

    report = alice.http.get("/v1/usage", params={"group_by": "principal"}).json()
    assert {line["key"] for line in report["lines"]} == {"alice", "bob"}
    assert report["owner"] is None and report["month"]["cost_usd"] == report["total"]["cost_usd"]
    bobs = bob.http.get("/v1/usage", params={"group_by": "class"}).json()
    assert bobs["owner"] == "bob" and bobs["month"] is None  # members see their own shells only
    [line] = bobs["lines"]
    assert line["key"] == "container" and line["vcpu_seconds"] == pytest.approx(2 * line["seconds"], abs=0.01)

    text = alice.http.get("/v1/usage", params={"group_by": "day", "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert rows[-1]["day"] == "total" and rows[-1]["cost_usd"] == report["total"]["cost_usd"]
    error(alice.http.get("/v1/usage", params={"group_by": "week"}), 400, "invalid_request")
    error(alice.http.get("/v1/usage", params={"format": "xml"}), 400, "invalid_request")
    error(alice.http.get("/v1/usage", params={"from": "yesterday"}), 400, "invalid_request")
    error(alice.http.get("/v1/usage", params={"tenant": "default"}), 404, "tenant_not_found")
    for sid in (a, b):
        assert alice.http.delete(f"/v1/shells/{sid}").status_code == 204


def test_pricing_shows_the_runtime_matrix_with_rates(tenancy: Tenancy) -> None:
    caller = tenancy.caller(tenancy.tenant("price"), "carol", ["shells.read"])
    pricing = caller.http.get("/v1/pricing").json()
    assert pricing["classes"]["microvm"]["vcpu_hour_usd"] == "0.0504"
    assert pricing["classes"]["microvm"]["gib_hour_usd"] == "0.0162"
    assert pricing["classes"]["microvm"]["vcpu_second_usd"] == "0.000014"
    assert pricing["classes"]["container"]["vcpu_hour_usd"] == "0.0252"
    assert pricing["classes"]["wasm"]["gib_hour_usd"] == "0.00405"
    hourly = {s["name"]: s["hour_usd"] for s in pricing["shapes"]}
    assert hourly["s-2vcpu-2gb"] == {"microvm": "0.133200", "container": "0.066600", "wasm": "0.033300"}
    matrix = {(row["language"], row["runtime"]): row for row in pricing["runtimes"]}
    assert matrix[("python", "container")]["available"] is True
    assert len(matrix) == 15


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of the exposition, through the Prometheus text-format parser."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` that carry ``labels``; a missing series fails."""
    found = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no sample {name} {labels}"
    return sum(s.value for s in found)


def test_metrics_parse_as_prometheus_text(server: ServerProcess, tenancy: Tenancy) -> None:
    admin = tenancy.admin
    member = tenancy.caller(tenancy.tenant("prom"), "dave", ADMIN)
    sid = create_shell(member)
    r = member.http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["true"]})
    assert r.status_code == 200, r.text
    error(member.http.get("/metrics"), 403, "permission_denied")  # every tenant's numbers: admins only
    first = admin.get("/metrics")
    assert first.headers["content-type"].startswith("text/plain")
    families = parse_metrics(first.text)
    assert sample(families, "shells_shells", state="running", runtime="container") >= 1
    assert sample(families, "shells_actions_total", action="create", outcome="ok") >= 1
    execs = sample(families, "shells_exec_duration_seconds_count")
    assert execs >= 1
    assert sample(families, "shells_usage_seconds_total", runtime="container") > 0
    assert sample(families, "shells_request_duration_seconds_count", route="/v1/shells/{shell_id}/exec") >= 1
    assert member.http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["true"]}).status_code == 200
    assert member.http.delete(f"/v1/shells/{sid}").status_code == 204
    later = parse_metrics(admin.get("/metrics").text)
    assert sample(later, "shells_exec_duration_seconds_count") == execs + 1
    assert sample(later, "shells_actions_total", action="delete", outcome="ok") >= 1
    assert sample(later, "shells_usage_cost_usd_total", runtime="container") >= sample(
        families, "shells_usage_cost_usd_total", runtime="container"
    )


def test_a_budget_cap_stops_the_tenants_shells_and_refuses_new_ones(tenancy: Tenancy) -> None:
    tenant = tenancy.tenant("cap")
    owner = tenancy.caller(tenant, "erin", ADMIN)
    big = create_shell(owner, shape="s-8vcpu-16gb")  # $0.3312 an hour as a container: ~$0.0001 in 1.1 s
    r = owner.http.put(f"/v1/tenants/{tenant}/billing", json={"budget_usd": "0.0001"})
    assert r.status_code == 200, r.text
    assert r.json()["free_tier_usd"] == "0.000000"  # the server's default
    error(
        owner.http.put(f"/v1/tenants/{tenant}/billing", json={"free_tier_usd": 5}), 403, "permission_denied"
    )
    wait_until(  # the check runs every SHELLS_BUDGET_CHECK_S (10 s)
        lambda: owner.http.get(f"/v1/shells/{big}").json()["state"] == "stopped",
        30,
        "the budget cap stopping the shell",
    )
    shell = owner.http.get(f"/v1/shells/{big}").json()
    assert "budget cap" in shell["state_reason"]
    [halt] = [
        e for e in owner.http.get(f"/v1/shells/{big}/events").json()["events"] if e["action"] == "budget"
    ]
    assert halt["principal"] == "system" and halt["outcome"] == "stopped" and "budget cap" in halt["message"]
    refused = error(owner.http.post("/v1/shells", json={"language": "bash"}), 403, "budget_exceeded")
    assert refused["details"]["limit"] == "budget_usd"
    error(owner.http.post(f"/v1/shells/{big}/actions", json={"capability": "start"}), 403, "budget_exceeded")
    terms = owner.http.get(f"/v1/tenants/{tenant}/billing").json()
    assert terms["cap_reached"] is True
    cost = terms["cost_usd"]
    time.sleep(1)
    assert owner.http.get(f"/v1/tenants/{tenant}/billing").json()["cost_usd"] == cost  # halted: no more
    assert owner.http.put(f"/v1/tenants/{tenant}/billing", json={"budget_usd": 10}).status_code == 200
    again = create_shell(owner)
    for sid in (big, again):
        assert owner.http.delete(f"/v1/shells/{sid}").status_code == 204


def test_kill_9_mid_interval_bills_the_same_as_no_crash(data_root: Any) -> None:
    with (
        running_server(data_root / "meter-crash", warm_pool=0) as srv,
        httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.token}"}) as http,
    ):
        r = http.post("/v1/shells", json={"language": "bash"})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        time.sleep(1)
        srv.kill9()  # mid-interval: the shell keeps running without its server
        time.sleep(2)
        srv.start()
        time.sleep(1)
        assert http.post(f"/v1/shells/{sid}/actions", json={"capability": "stop"}).status_code == 200
        wall = running_time(http, sid)
        assert wall > 4
        assert billed_seconds(http, sid) == pytest.approx(wall, abs=1)
        lines = http.get("/v1/usage", params={"group_by": "shell"}).json()["lines"]
        assert [line["key"] for line in lines] == [sid]  # one shell, billed once
