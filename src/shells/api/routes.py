"""REST v1. Routes only translate HTTP to control calls; every rule lives in the control layer."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.requests import CreateShellRequest, parse_exec
from ..domain.errors import InvalidRequest, ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecStarted, FileEntry, OutputChunk
from .deps import DOOR, BodyDep, ControlDep, PrincipalDep
from .errors import error_body

router = APIRouter()
FILE_CHUNK = 256 * 1024


def _entry(e: FileEntry) -> dict[str, Any]:
    return {
        "path": e.path,
        "name": e.name,
        "kind": e.kind,
        "size": e.size,
        "mode": e.mode,
        "mtime": e.mtime,
        "link_target": e.link_target,
    }


def _exit(e: ExecExit) -> dict[str, Any]:
    return {
        "exit_code": e.exit_code,
        "signal": e.signal,
        "timed_out": e.timed_out,
        "truncated": e.truncated,
        "duration_ms": e.duration_ms,
    }


@router.get("/v1/info")
async def info(control: ControlDep) -> dict[str, Any]:
    return control.info()


@router.post("/v1/shells", status_code=201)
async def create_shell(control: ControlDep, principal: PrincipalDep, body: BodyDep) -> dict[str, Any]:
    shell = await control.shells.create(principal, CreateShellRequest.parse(body), DOOR)
    return shell.to_public()


@router.get("/v1/shells")
async def list_shells(
    control: ControlDep,
    principal: PrincipalDep,
    state: str | None = None,
    runtime: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    shells = control.shells.list(principal, state=state, runtime=runtime, label=label)
    return {"shells": [s.to_public() for s in shells]}


@router.get("/v1/shells/{shell_id}")
async def get_shell(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return control.shells.get(principal, shell_id).to_public()


@router.delete("/v1/shells/{shell_id}", status_code=204)
async def delete_shell(control: ControlDep, principal: PrincipalDep, shell_id: str) -> Response:
    await control.shells.delete(principal, shell_id, DOOR)
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/actions")
async def act(control: ControlDep, principal: PrincipalDep, shell_id: str, body: BodyDep) -> dict[str, Any]:
    capability = body.get("capability")
    params = {k: v for k, v in body.items() if k != "capability"}
    shell, result = await control.shells.act(principal, shell_id, str(capability), DOOR, params)
    return {"shell": shell.to_public(), "result": result}


@router.get("/v1/shells/{shell_id}/events")
async def events(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    after: int = 0,
    limit: int = Query(500, le=5000),
) -> dict[str, Any]:
    return {"events": [e.to_public() for e in control.events(principal, shell_id, after, limit)]}


@router.get("/v1/snapshots")
async def snapshots(
    control: ControlDep, principal: PrincipalDep, shell_id: str | None = None
) -> dict[str, Any]:
    return {"snapshots": [s.to_public() for s in control.snapshots(principal, shell_id)]}


@router.post("/v1/shells/{shell_id}/exec", response_model=None)
async def exec_(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    body: BodyDep,
    wait: bool = False,
) -> JSONResponse | StreamingResponse:
    events = await control.inside.exec(principal, shell_id, parse_exec(body), DOOR)
    if wait:
        out, err = bytearray(), bytearray()
        result: dict[str, Any] = {}
        async for ev in events:
            if isinstance(ev, ExecExit):
                result = _exit(ev)
            elif isinstance(ev, OutputChunk):
                (out if ev.stream == "stdout" else err).extend(ev.data)
        return JSONResponse(
            {"stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"), **result}
        )
    first = await _first(events)
    return StreamingResponse(_ndjson(first, events), media_type="application/x-ndjson")


async def _first(events: AsyncIterator[ExecEvent]) -> ExecEvent | None:
    """Pull the first event (``started``, sent as soon as the process is spawned) before answering,
    so a command that cannot start is a 4xx, not a stream."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


async def _ndjson(first: ExecEvent | None, events: AsyncIterator[ExecEvent]) -> AsyncIterator[bytes]:
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}

    def line(ev: ExecEvent) -> bytes:
        if isinstance(ev, ExecExit):
            return json.dumps({"type": "exit", **_exit(ev)}).encode() + b"\n"
        if isinstance(ev, ExecStarted):
            return json.dumps({"type": "started", "pid": ev.pid}).encode() + b"\n"
        return json.dumps({"type": ev.stream, "data": decoders[ev.stream].decode(ev.data)}).encode() + b"\n"

    try:
        if first is not None:
            yield line(first)
        async for ev in events:
            yield line(ev)
    except ShellsError as exc:
        yield json.dumps({"type": "error", **error_body(exc.code, exc.message, exc.details)}).encode() + b"\n"
    finally:
        await events.aclose()  # type: ignore[attr-defined]


@router.get("/v1/shells/{shell_id}/files")
async def read_file(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str
) -> StreamingResponse:
    chunks = control.inside.read_file(principal, shell_id, path)
    first = await anext(chunks, b"")
    return StreamingResponse(_prepend(first, chunks), media_type="application/octet-stream")


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


@router.put("/v1/shells/{shell_id}/files")
async def write_file(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    path: str,
    request: Request,
    mode: str = "644",
) -> dict[str, Any]:
    try:
        file_mode = int(mode, 8)
    except ValueError:
        file_mode = -1
    if not 0 <= file_mode <= 0o7777:
        raise InvalidRequest("'mode' must be octal permission bits such as 644.")
    size = await control.inside.write_file(principal, shell_id, path, request.stream(), file_mode, DOOR)
    return {"path": path, "size": size}


@router.delete("/v1/shells/{shell_id}/files", status_code=204)
async def remove_file(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str, recursive: bool = False
) -> Response:
    await control.inside.remove(principal, shell_id, path, recursive, DOOR)
    return Response(status_code=204)


@router.get("/v1/shells/{shell_id}/files/list")
async def list_files(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str = "/workspace"
) -> dict[str, Any]:
    return {
        "path": path,
        "entries": [_entry(e) for e in await control.inside.list_dir(principal, shell_id, path)],
    }


@router.get("/v1/shells/{shell_id}/files/stat")
async def stat_file(control: ControlDep, principal: PrincipalDep, shell_id: str, path: str) -> dict[str, Any]:
    return _entry(await control.inside.stat(principal, shell_id, path))


@router.post("/v1/shells/{shell_id}/files/mkdir", status_code=201)
async def mkdir(control: ControlDep, principal: PrincipalDep, shell_id: str, path: str) -> dict[str, Any]:
    await control.inside.mkdir(principal, shell_id, path, DOOR)
    return {"path": path}
