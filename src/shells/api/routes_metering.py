"""REST v1 for metering: usage and its CSV export, pricing, a tenant's billing terms, and
``/metrics``. Routes only translate HTTP to control calls; every rule lives in the control layer."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..control.bodies import BillingBody
from ..control.metering import UsageReport
from ..domain.errors import InvalidRequest
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import ControlDep, PrincipalDep
from .metrics import registry_of

router = APIRouter(route_class=BodyRoute)
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
CSV_COLUMNS = ("key", "seconds", "vcpu_seconds", "gib_seconds", "cost_usd")


def usage_csv(report: UsageReport) -> str:
    """One row per line of the report, then the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((report.group_by.value, *CSV_COLUMNS[1:]))
    for line in [*report.lines, report.total]:
        row = line.to_public()
        writer.writerow(row[c] for c in CSV_COLUMNS)
    return out.getvalue()


@router.get(
    "/v1/usage",
    response_model=None,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **errors(*AUTHED, 404)},
)
async def usage(
    control: ControlDep,
    principal: PrincipalDep,
    request: Request,
    group_by: str | None = None,
    tenant: str | None = None,
    format: str = "json",
) -> dict[str, Any] | Response:
    if format not in ("json", "csv"):
        raise InvalidRequest("'format' must be json or csv.", {"field": "format"})
    report = control.metering.usage(
        principal,
        start=request.query_params.get("from"),
        end=request.query_params.get("to"),
        group_by=group_by,
        tenant=tenant,
    )
    if format == "csv":
        name = f"usage-{report.tenant}-{report.start.date()}-{report.end.date()}.csv"
        return Response(
            usage_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    return report.to_public()


@router.get("/v1/pricing", responses=errors(*AUTHED))
async def pricing(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return control.metering.pricing(principal)


@router.get("/v1/tenants/{name}/billing", responses=errors(*AUTHED, 404))
async def get_billing(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.metering.get_terms(principal, name)


@router.put("/v1/tenants/{name}/billing", responses=errors(*AUTHED, *BODY, 404))
async def set_billing(
    control: ControlDep, principal: PrincipalDep, name: str, body: BillingBody
) -> dict[str, Any]:
    return control.metering.set_terms(principal, name, body.wire())


@router.get("/metrics", response_class=Response, responses={200: TEXT, **errors(*AUTHED)})
async def metrics(control: ControlDep, principal: PrincipalDep, request: Request) -> Response:
    """Prometheus text format (scrape with a platform admin's token as the bearer token)."""
    control.metrics.authorize(principal)
    return Response(generate_latest(registry_of(request.app)), media_type=CONTENT_TYPE_LATEST)
