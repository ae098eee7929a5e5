"""A client of the OCI distribution API (what Docker Hub, GHCR and the CNCF registry speak), over httpx.

Only what import and export need: manifests (by tag or digest), blobs streamed to a file with their
digest checked as they arrive, and pushes (a blob in one PUT after a POST, then the manifest).

Auth follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the credentials on every
request; ``Bearer`` asks the named token service for a token for the repository's scope (with the
credentials as basic auth when there are any) and sends that. A refusal after credentials were
offered, or a registry that needs them when none were given, is ``RegistryDenied``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ...domain.errors import ImageNotFound, ImageRejected, RegistryDenied, RegistryError
from ...domain.limits import OCI_MANIFEST_MAX_BYTES
from ...domain.oci import INDEX_TYPES, MANIFEST_TYPES, ImageRef

ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
CHUNK = 1 << 20
TIMEOUT = httpx.Timeout(30.0, read=120.0)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def tls_context(extra_ca_files: tuple[Path, ...]) -> ssl.SSLContext:
    """The system's trusted CAs plus ``extra_ca_files`` (a private registry's CA)."""
    ctx = ssl.create_default_context()
    for path in extra_ca_files:
        if path.is_file():
            ctx.load_verify_locations(cafile=str(path))
    return ctx


_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """One repository on one registry, with the credentials to use there."""

    def __init__(
        self, ref: ImageRef, credentials: Credentials | None, tls: ssl.SSLContext, *, push: bool = False
    ) -> None:
        self.ref = ref
        self.credentials = credentials
        self.scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        self.base = f"https://{ref.registry}/v2/{ref.repository}"
        self._auth: str | None = None
        self._http = httpx.AsyncClient(verify=tls, timeout=TIMEOUT, follow_redirects=True)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # the one request path -------------------------------------------------------------------------
    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """``method url``, authenticating once on a 401 challenge; a network failure is RegistryError."""
        for attempt in range(2):
            headers = dict(kwargs.pop("headers", None) or {})
            if self._auth:
                headers["Authorization"] = self._auth
            try:
                req = self._http.build_request(method, url, headers=headers, **kwargs)
                resp = await self._http.send(req, stream=True)
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"The registry {self.ref.registry} could not be reached: {exc}.",
                    {"registry": self.ref.registry},
                ) from None
            if resp.status_code != 401:
                return resp
            await resp.aclose()
            if attempt == 1 or self._auth is not None:
                break
            kwargs["headers"] = headers
            await self._authenticate(resp.headers.get("www-authenticate", ""))
        who = "the credentials given" if self.credentials else "no credentials"
        raise RegistryDenied(
            f"The registry {self.ref.registry} refused {who} for {self.ref.repository}; "
            'send \'credentials\': {"username", "password"} that may pull it.',
            {"registry": self.ref.registry, "repository": self.ref.repository},
        )

    async def _authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        creds = self.credentials
        if scheme.lower() == "basic":
            if creds is None:
                return  # the retry is refused again, and reported
            self._auth = basic_header(creds)
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"The registry asks for unsupported auth {scheme!r}.")
        params = dict(_PARAM.findall(rest))
        realm = params.get("realm")
        if not realm or not realm.startswith("https://"):
            raise RegistryError("The registry's token challenge names no https realm.")
        query = {"scope": params.get("scope", self.scope)}
        if "service" in params:
            query["service"] = params["service"]
        auth = httpx.BasicAuth(creds.username, creds.password) if creds else None
        try:
            resp = await self._http.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryError(f"The registry's token service could not be reached: {exc}.") from None
        if resp.status_code in (401, 403):
            return  # the retry is refused, and reported as RegistryDenied
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except ValueError:
            token = None
        if resp.status_code != 200 or not isinstance(token, str):
            raise RegistryError(f"The registry's token service answered {resp.status_code}.")
        self._auth = f"Bearer {token}"

    async def _fail(self, resp: httpx.Response, what: str) -> None:
        body = (await resp.aread())[:500].decode(errors="replace")
        await resp.aclose()
        if resp.status_code == 404:
            raise ImageNotFound(
                f"The registry {self.ref.registry} has no {what} ({self.ref}).", {"image": str(self.ref)}
            )
        if resp.status_code == 403:
            raise RegistryDenied(
                f"The registry {self.ref.registry} refused access to {self.ref.repository}.",
                {"registry": self.ref.registry, "repository": self.ref.repository},
            )
        raise RegistryError(
            f"The registry {self.ref.registry} answered {resp.status_code} for {what}: {body}",
            {"status": resp.status_code},
        )

    # pulling --------------------------------------------------------------------------------------
    async def manifest(self, reference: str) -> tuple[str, str, bytes]:
        """(media type, digest, bytes) of the manifest or index at ``reference`` (tag or digest). A
        digest reference is checked against the bytes."""
        resp = await self._request("GET", f"{self.base}/manifests/{reference}", headers={"Accept": ACCEPT})
        if resp.status_code != 200:
            await self._fail(resp, f"manifest {reference}")
        body = await _read_capped(resp, OCI_MANIFEST_MAX_BYTES, "manifest")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImageRejected(
                f"The registry sent a manifest whose digest is {digest}, not {reference}.",
                {"layer": None, "expected": reference, "actual": digest},
            )
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        try:
            media = json.loads(body).get("mediaType") or media
        except (ValueError, AttributeError):
            raise ImageRejected("The registry sent a manifest that is not JSON.", {"layer": None}) from None
        return media, digest, body

    async def blob_to_file(
        self, digest: str, size: int, dest: Path, on_bytes: Callable[[int], None], what: str
    ) -> None:
        """Stream blob ``digest`` into ``dest``, checking its size and sha256 as it arrives; a
        mismatch is ImageRejected naming ``what`` (the layer)."""
        resp = await self._request("GET", f"{self.base}/blobs/{digest}")
        if resp.status_code != 200:
            await self._fail(resp, f"blob {digest}")
        hasher, got = hashlib.sha256(), 0
        try:
            with dest.open("wb") as out:
                async for chunk in resp.aiter_bytes(CHUNK):
                    got += len(chunk)
                    if got > size:
                        break
                    hasher.update(chunk)
                    out.write(chunk)
                    on_bytes(len(chunk))
        except httpx.HTTPError as exc:
            raise RegistryError(f"Downloading {what} was cut short: {exc}.", {"layer": what}) from None
        finally:
            await resp.aclose()
        actual = "sha256:" + hasher.hexdigest()
        if got != size or actual != digest:
            raise ImageRejected(
                f"{what} does not match its digest: the manifest says {digest} ({size} bytes), the "
                f"registry sent {'more than ' if got > size else ''}{got} bytes hashing to {actual}.",
                {"layer": what, "expected": digest, "actual": actual},
            )

    # pushing --------------------------------------------------------------------------------------
    async def has_blob(self, digest: str) -> bool:
        resp = await self._request("HEAD", f"{self.base}/blobs/{digest}")
        await resp.aclose()
        return resp.status_code == 200

    async def push_blob(self, digest: str, path: Path) -> None:
        """Upload file ``path`` as blob ``digest`` unless the registry has it."""
        with path.open("rb") as data:
            await self._upload(digest, _file_chunks(data), path.stat().st_size)

    async def push_blob_bytes(self, digest: str, body: bytes) -> None:
        await self._upload(digest, body, len(body))

    async def _upload(self, digest: str, content: Any, size: int) -> None:
        """A monolithic upload: POST opens a session, one PUT sends the bytes and the digest."""
        if await self.has_blob(digest):
            return
        resp = await self._request("POST", f"{self.base}/blobs/uploads/")
        await resp.aclose()
        location = resp.headers.get("location")
        if resp.status_code != 202 or not location:
            await self._fail(resp, "an upload session")
        url = httpx.URL(self.base).join(location or "")
        sep = "&" if url.query else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = await self._request("PUT", f"{url}{sep}digest={digest}", content=content, headers=headers)
        await resp.aclose()
        if resp.status_code != 201:
            await self._fail(resp, f"the upload of {digest}")

    async def push_manifest(self, tag: str, media_type: str, body: bytes) -> None:
        resp = await self._request(
            "PUT", f"{self.base}/manifests/{tag}", content=body, headers={"Content-Type": media_type}
        )
        await resp.aclose()
        if resp.status_code != 201:
            await self._fail(resp, f"the manifest {tag}")


def basic_header(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


async def _read_capped(resp: httpx.Response, limit: int, what: str) -> bytes:
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > limit:
            await resp.aclose()
            raise ImageRejected(f"The {what} is larger than {limit} bytes.", {"layer": None})
    await resp.aclose()
    return bytes(body)


async def _file_chunks(data: Any) -> Any:
    while chunk := data.read(CHUNK):
        yield chunk
