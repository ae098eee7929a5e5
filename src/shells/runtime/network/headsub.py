"""Placeholders swapped for secret values in one HTTP/1.1 request head. Pure.

Only a request whose ``Host`` is the name the TLS client asked for (and whose certificate the proxy
verified upstream) is touched: a server behind one address often serves many names and routes by
``Host``, so a mismatch could carry the value to a name outside the secret's list. Where a secret
names a ``header``, only that header's value is touched; otherwise every header value, the
credentials of ``Authorization: Basic`` and the request target (query). The head is sent with
``Connection: close``: what follows on the connection is relayed as bytes, unparsed, so a second
request there keeps its placeholders.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from urllib.parse import quote

from ...domain.secrets import Brokered


def substitute(head: bytes, host: str, secrets: Sequence[Brokered]) -> tuple[bytes, list[str]]:
    """``head`` (ending with CRLF CRLF) with the placeholders of ``secrets`` replaced, and the names
    of the secrets used. Unchanged (and no names) if it is not a request for ``host``."""
    lines = head.split(b"\r\n")
    request, headers = lines[0], [line for line in lines[1:] if line]
    parts = request.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return head, []
    hosts = [_value(h) for h in headers if _name(h) == b"host"]
    if len(hosts) != 1 or _hostname(hosts[0]) != host.encode():
        return head, []
    used: list[str] = []
    for secret in secrets:
        placeholder, value = secret.placeholder.encode(), secret.value.encode()
        hit = False
        if secret.header is None and placeholder in parts[1]:
            parts[1] = parts[1].replace(placeholder, quote(secret.value, safe="").encode())
            hit = True
        for i, line in enumerate(headers):
            name = _name(line)
            if name == b"host" or (secret.header is not None and name != secret.header.encode()):
                continue
            new = _swap_value(line, name, placeholder, value)
            if new != line:
                headers[i], hit = new, True
        if hit:
            used.append(secret.name)
    headers = [h for h in headers if _name(h) not in (b"connection", b"keep-alive")]
    headers.append(b"Connection: close")
    return b"\r\n".join([b" ".join(parts), *headers]) + b"\r\n\r\n", used


def _name(line: bytes) -> bytes:
    return line.split(b":", 1)[0].strip().lower()


def _value(line: bytes) -> bytes:
    return line.split(b":", 1)[1].strip() if b":" in line else b""


def _hostname(authority: bytes) -> bytes:
    if authority.startswith(b"["):
        return authority.lower()
    return (
        authority.rsplit(b":", 1)[0].lower().rstrip(b".")
        if b":" in authority
        else authority.lower().rstrip(b".")
    )


def _swap_value(line: bytes, name: bytes, placeholder: bytes, value: bytes) -> bytes:
    raw_name, _, raw_value = line.partition(b":")
    if name in (b"authorization", b"proxy-authorization"):
        scheme, _, credentials = raw_value.strip().partition(b" ")
        if scheme.lower() == b"basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            if placeholder in decoded:
                encoded = base64.b64encode(decoded.replace(placeholder, value))
                return raw_name + b": " + scheme + b" " + encoded
    if placeholder in raw_value:
        return raw_name + b":" + raw_value.replace(placeholder, value)
    return line
