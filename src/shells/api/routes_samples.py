"""REST v1 for metrics over time: a shell's CPU, memory and disk samples in a time range."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from ..domain.errors import InvalidRequest
from .contract import AUTHED, BodyRoute, errors
from .deps import ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


def parse_instant(value: str | None, name: str) -> float | None:
    """Unix seconds, or an ISO 8601 time with its offset; else the typed 400 naming the parameter."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest(
            f"'{name}' must be Unix seconds or an ISO 8601 time with its offset, such as "
            "2026-12-07T12:00:00+00:00.",
            {"field": name},
        )
    return moment.timestamp()


@router.get(
    "/v1/shells/{shell_id}/metrics",
    responses=errors(*AUTHED, 404),
)
async def shell_metrics(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """Samples from ``start`` to ``end`` (Unix seconds or ISO 8601; both optional), oldest first:
    ``cpu_percent`` of one core since the previous sample, ``memory_bytes``, ``disk_bytes``."""
    samples = control.samples.series(
        principal, shell_id, parse_instant(start, "start"), parse_instant(end, "end")
    )
    return {
        "shell_id": shell_id,
        "interval_s": control.samples.interval_s,
        "samples": [s.to_public() for s in samples],
    }
