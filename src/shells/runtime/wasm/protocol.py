"""Frames between the server and a wasm worker process, over the worker's stdin and stdout pipes.

A frame is a 5-byte header (payload length, kind) and the payload. The server sends ``RUN`` (a JSON
request) followed by ``STDIN`` (the guest's whole stdin) and, when the request says
``inline_module``, ``MODULE`` (the program's bytes); the worker answers ``STARTED`` once the
guest is instantiated, ``STDOUT`` and ``STDERR`` chunks as the guest writes them, then one ``EXIT``
(JSON); or, for a request it could not start, one ``FAIL`` (JSON: an error code and message).
``READY`` is the worker's first frame.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

HEADER = struct.Struct(">IB")
MAX_FRAME = 64 * 1024 * 1024


class WorkerFrameKind(IntEnum):
    READY = ord("H")
    RUN = ord("R")
    STDIN = ord("I")
    MODULE = ord("M")
    STARTED = ord("S")
    STDOUT = ord("O")
    STDERR = ord("E")
    EXIT = ord("X")
    FAIL = ord("F")


def frame(kind: WorkerFrameKind, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def json_frame(kind: WorkerFrameKind, message: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(message).encode())
