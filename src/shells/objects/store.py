"""Object storage, the durable layer of an instance: a local directory on one box, any
S3-compatible bucket for a cluster (``SHELLS_OBJECT_STORE``).

Both keep files under keys; ``put_blob`` stores a file under the SHA-256 of its content, so the same
content is stored once and every download can be checked against its name. A download lands in a
temporary file first and is renamed into place only after its digest matched: a reader never sees
half an object or a corrupt one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, unquote, urlsplit

import anyio
import httpx

from .sigv4 import EMPTY_SHA256, Credentials, sign

CHUNK = 1 << 20
PART_SIZE = 16 << 20
"""Files larger than this go up in parts of this size (S3 allows 5 MiB to 5 GiB per part)."""
MAX_LISTING_BYTES = 8 << 20
"""The largest listing page read from a server (a hostile endpoint cannot make us hold more)."""
BLOBS = "blobs/sha256/"


class ObjectStoreError(Exception):
    """The object store failed; the message says how, never with a credential in it."""


class Unreachable(ObjectStoreError):
    """The endpoint did not answer (refused, timed out, name not found)."""


class Denied(ObjectStoreError):
    """The endpoint refused the credentials (or they may not touch this bucket)."""


class NoSuchBucket(ObjectStoreError):
    pass


class Missing(ObjectStoreError):
    """No object under that key."""


class Corrupt(ObjectStoreError):
    """The bytes that arrived are not the bytes that were stored (their digest differs)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def blob_key(sha256: str) -> str:
    return BLOBS + sha256


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectStore(Protocol):
    async def put(self, key: str, path: Path) -> ObjectInfo: ...

    async def get(self, key: str, dest: Path, sha256: str | None = None) -> None:
        """Download ``key`` into ``dest`` (replaced atomically), checked against ``sha256``."""
        ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[str]: ...

    async def check(self) -> None:
        """That the store answers and these credentials may use it (called at start-up)."""
        ...

    async def aclose(self) -> None: ...


def open_store(url: str | None, local_root: Path) -> ObjectStore:
    """The store ``SHELLS_OBJECT_STORE`` names (``S3Location.parse``), or a directory without one;
    a malformed URL raises ValueError with what to fix."""
    if url is None:
        return LocalObjects(local_root)
    return S3Objects(S3Location.parse(url))


async def put_blob(store: ObjectStore, path: Path, on_digest: Callable[[str], object] | None = None) -> str:
    """Store ``path`` under its content's digest (once: a blob already there is not sent again);
    ``on_digest`` hears the digest before anything is sent."""
    sha256 = await anyio.to_thread.run_sync(file_sha256, path)
    if on_digest is not None:
        on_digest(sha256)
    if await store.head(blob_key(sha256)) is None:
        await store.put(blob_key(sha256), path)
    return sha256


async def get_blob(store: ObjectStore, sha256: str, dest: Path) -> None:
    await store.get(blob_key(sha256), dest, sha256)


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not an object key: {key!r}")
    return key


class _Landing:
    """A temporary file beside ``dest`` that becomes ``dest`` only if its digest is right."""

    def __init__(self, dest: Path, sha256: str | None) -> None:
        self.dest, self.want = dest, sha256
        self.tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        self.digest = hashlib.sha256()
        self.file = self.tmp.open("wb")

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.file.write(chunk)

    def finish(self, key: str) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.want is not None and self.digest.hexdigest() != self.want:
            self.tmp.unlink(missing_ok=True)
            raise Corrupt(f"object {key} does not match its digest {self.want[:12]}…")
        self.tmp.rename(self.dest)

    def abandon(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class LocalObjects:
    """Objects as files under one directory (the default of a single machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def put(self, key: str, path: Path) -> ObjectInfo:
        target = self._path(key)

        def copy() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            landing = _Landing(target, None)
            try:
                with path.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        landing.write(chunk)
                landing.finish(key)
            except BaseException:
                landing.abandon()
                raise
            return target.stat().st_size

        return ObjectInfo(key, await anyio.to_thread.run_sync(copy))

    async def get(self, key: str, dest: Path, sha256: str | None = None) -> None:
        source = self._path(key)

        def copy() -> None:
            try:
                f = source.open("rb")
            except FileNotFoundError:
                raise Missing(f"no object {key}") from None
            landing = _Landing(dest, sha256)
            try:
                with f:
                    while chunk := f.read(CHUNK):
                        landing.write(chunk)
                landing.finish(key)
            except BaseException:
                landing.abandon()
                raise

        await anyio.to_thread.run_sync(copy)

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return ObjectInfo(key, path.stat().st_size) if path.is_file() else None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def list(self, prefix: str) -> list[str]:
        found = [str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()]
        return sorted(k for k in found if k.startswith(prefix) and not Path(k).name.startswith("."))

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class S3Location:
    endpoint: str
    """``http(s)://host[:port]``: path-style addressing, which every S3-compatible server serves."""
    bucket: str
    prefix: str
    credentials: Credentials

    @classmethod
    def parse(cls, url: str, region: str = "us-east-1") -> S3Location:
        """``http(s)://KEY_ID:SECRET@host:port/bucket[/prefix]`` (user info percent-encoded)."""
        parts = urlsplit(url)
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if parts.scheme not in ("http", "https") or not parts.hostname or not bucket:
            raise ValueError("an object store is http(s)://KEY_ID:SECRET@host[:port]/bucket[/prefix]")
        if not parts.username or parts.password is None:
            raise ValueError("the object store URL needs credentials: KEY_ID:SECRET@ before the host")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        creds = Credentials(unquote(parts.username), unquote(parts.password), region)
        return cls(f"{parts.scheme}://{host}", bucket, prefix.strip("/"), creds)


class S3Objects:
    """Objects in an S3-compatible bucket, over httpx with SigV4 (no SDK)."""

    def __init__(self, where: S3Location, timeout_s: float = 30.0) -> None:
        self.where = where
        self._host = urlsplit(where.endpoint).netloc
        self._http = httpx.AsyncClient(base_url=where.endpoint, timeout=httpx.Timeout(timeout_s, connect=5.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _path(self, key: str | None) -> str:
        bucket = "/" + quote(self.where.bucket, safe="")
        if key is None:
            return bucket
        full = f"{self.where.prefix}/{_check_key(key)}" if self.where.prefix else _check_key(key)
        return f"{bucket}/{quote(full, safe='/-_.~')}"

    async def _send(
        self,
        method: str,
        key: str | None,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        params = params or {}
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        path = self._path(key)
        signed = sign(self.where.credentials, method, self._host, path, params, headers or {}, payload)
        request = self._http.build_request(
            method, path, params=params, content=body or None, headers={**(headers or {}), **signed}
        )
        try:
            response = await self._http.send(request, stream=stream)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.ReadTimeout,
            httpx.RemoteProtocolError,
        ) as exc:
            raise Unreachable(
                f"object store {self.where.endpoint} did not answer: {type(exc).__name__}"
            ) from None
        if response.status_code >= 300:
            await self._raise(response, key)
        return response

    async def _raise(self, response: httpx.Response, key: str | None) -> None:
        text = (await response.aread())[:4096].decode(errors="replace")
        await response.aclose()
        code = _xml_field(text, "Code") or str(response.status_code)
        where = f"bucket {self.where.bucket} at {self.where.endpoint}"
        if response.status_code == 404 and code == "NoSuchBucket":
            raise NoSuchBucket(f"{where} does not exist")
        if response.status_code == 404:
            raise Missing(f"no object {key} in {where}")
        if response.status_code in (401, 403):
            raise Denied(f"{where} refused the credentials ({code})")
        raise ObjectStoreError(f"{where} answered {response.status_code} {code}")

    async def create_bucket(self) -> None:
        """Create the bucket (an operator's step when setting up an instance; tests use it too)."""
        try:
            await self._send("PUT", None)
        except ObjectStoreError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                raise

    async def check(self) -> None:
        """That the bucket exists and the credentials may list it (a cheap call made at start-up)."""
        await self._send("GET", None, params={"list-type": "2", "max-keys": "1"})

    async def put(self, key: str, path: Path) -> ObjectInfo:
        with path.open("rb") as f:
            return await self.put_file(key, f)

    async def put_file(self, key: str, f: BinaryIO) -> ObjectInfo:
        """Store what ``f`` holds from its position to its end (one request, or parts past
        PART_SIZE); the size stored is what was read, even if the file grew or shrank meanwhile."""
        first = await anyio.to_thread.run_sync(f.read, PART_SIZE)
        rest = await anyio.to_thread.run_sync(f.read, 1) if len(first) == PART_SIZE else b""
        if not rest:
            await self._send("PUT", key, body=first)
            return ObjectInfo(key, len(first))
        created = await self._send("POST", key, params={"uploads": ""})
        upload_id = _xml_field(created.text, "UploadId")
        if not upload_id:
            raise ObjectStoreError("the object store answered a multipart upload without an UploadId")
        try:
            etags, size = await self._parts(key, f, first + rest, upload_id)
            done = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
                for n, etag in enumerate(etags, start=1)
            )
            body = f"<CompleteMultipartUpload>{done}</CompleteMultipartUpload>".encode()
            await self._send("POST", key, params={"uploadId": upload_id}, body=body)
        except BaseException:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(ObjectStoreError):
                    await self._send("DELETE", key, params={"uploadId": upload_id})
            raise
        return ObjectInfo(key, size)

    async def _parts(self, key: str, f: BinaryIO, head: bytes, upload_id: str) -> tuple[list[str], int]:
        """Send ``head`` and the rest of ``f`` in parts of PART_SIZE: their ETags and total size."""
        etags: list[str] = []
        size, buffered, ended = 0, head, False
        while buffered or not ended:
            if not ended and len(buffered) < PART_SIZE:
                more = await anyio.to_thread.run_sync(f.read, PART_SIZE - len(buffered))
                ended, buffered = not more, buffered + more
                continue
            chunk, buffered = buffered[:PART_SIZE], buffered[PART_SIZE:]
            params = {"partNumber": str(len(etags) + 1), "uploadId": upload_id}
            answer = await self._send("PUT", key, params=params, body=chunk)
            etags.append(answer.headers.get("ETag", ""))
            size += len(chunk)
        return etags, size

    async def get(self, key: str, dest: Path, sha256: str | None = None) -> None:
        response = await self._send("GET", key, stream=True)
        landing = _Landing(dest, sha256)
        try:
            async for chunk in response.aiter_bytes(CHUNK):
                landing.write(chunk)
            landing.finish(key)
        except BaseException:
            landing.abandon()
            raise
        finally:
            await response.aclose()

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            answer = await self._send("HEAD", key)
        except Missing:
            return None
        return ObjectInfo(key, int(answer.headers.get("Content-Length", 0)))

    async def delete(self, key: str) -> None:
        await self._send("DELETE", key)

    async def list(self, prefix: str) -> list[str]:
        full = f"{self.where.prefix}/{prefix}" if self.where.prefix else prefix
        keys: list[str] = []
        token: str | None = None
        while True:
            params = {"list-type": "2", "prefix": full}
            if token:
                params["continuation-token"] = token
            answer = await self._send("GET", None, params=params, stream=True)
            body = b""
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    await answer.aclose()
                    raise ObjectStoreError("the object store's listing page is too large")
            root = ET.fromstring(body)
            ns = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
            strip = len(self.where.prefix) + 1 if self.where.prefix else 0
            keys += [el.text[strip:] for el in root.iter(f"{ns}Key") if el.text]
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                return keys


def _xml_field(text: str, name: str) -> str | None:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rpartition("}")[2] == name:
            return el.text
    return None
