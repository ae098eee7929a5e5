"""Turn a wire error back into the same exception class the server raised."""

from __future__ import annotations

import httpx

from ..domain.errors import ERRORS_BY_CODE, ShellsError


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        err = body["error"]
        code, message, details = str(err["code"]), str(err["message"]), dict(err.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "internal", f"HTTP {response.status_code}: {response.text[:500]}", {}
    cls = ERRORS_BY_CODE.get(code, ShellsError)
    exc = cls(message, details | {"status": response.status_code})
    if cls is ShellsError:
        exc.details["code"] = code
    raise exc
