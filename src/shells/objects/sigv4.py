"""AWS Signature Version 4 for S3 requests (the wire format every S3-compatible server checks).

The payload's SHA-256 is part of what is signed, so a server that verifies it (SeaweedFS, MinIO, S3)
refuses a body altered on the way; callers pass the real digest, never ``UNSIGNED-PAYLOAD``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def __repr__(self) -> str:  # never the secret in a log line or a traceback
        return f"Credentials(access_key_id={self.access_key_id!r}, region={self.region!r})"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def canonical_query(params: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def sign(
    creds: Credentials,
    method: str,
    host: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to a request (``Authorization``, ``x-amz-date``, ``x-amz-content-sha256``).

    ``path`` is the already-encoded request path; ``headers`` are the other headers that must be
    signed (names lowercase)."""
    at = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = at[:8]
    signed = {**{k.lower(): v.strip() for k, v in headers.items()}, "host": host,
              "x-amz-date": at, "x-amz-content-sha256": payload_sha256}  # fmt: skip
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query(params),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{creds.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", at, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds.secret_access_key).encode(), day)
    for part in (creds.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}",
        "x-amz-date": at,
        "x-amz-content-sha256": payload_sha256,
    }
