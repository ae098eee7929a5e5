"""The one vocabulary of a user's bucket failing (docs/storage.md, "Bucket errors"), shared by every
door that reaches a user's bucket from the host: bucket mounts and workspace sync.

    code                 status  details.reason   what to fix
    bucket_denied        400     denied           the credentials (``<field>.credentials``)
    bucket_not_found     404     no_such_bucket   the bucket name (``<field>.bucket``)
    bucket_unreachable   400     unreachable      the endpoint: it did not answer in time
                                 forbidden        the endpoint: an address the server must not reach
                                 error            the endpoint: it answered in a way Shells cannot use

Every one carries ``details.field`` (the field to fix), ``bucket`` and ``endpoint``, and never a
secret. The same codes are the ``last_error_code`` of a failing sync and the outcome of its audit
event."""

from __future__ import annotations

import anyio

from ..domain.errors import BucketDenied, BucketNotFound, BucketUnreachable, ShellsError
from ..objects.store import Denied, NoSuchBucket, ObjectStoreError, S3Location, S3Objects, Unreachable
from .webhook_target import TargetRefused


def bucket_error(exc: BaseException, location: S3Location, field: str) -> ShellsError:
    """The typed error of ``exc`` (an object store error, a timeout or a refused address) met on
    ``location``; ``field`` is where the request named the bucket (``mounts[0]``, ``sync``)."""
    endpoint, bucket = location.endpoint, location.bucket

    def details(part: str, reason: str) -> dict[str, object]:
        return {"field": f"{field}.{part}", "bucket": bucket, "endpoint": endpoint, "reason": reason}

    if isinstance(exc, Denied):
        return BucketDenied(
            f"{endpoint} refused the credentials for bucket {bucket!r}; check '{field}.credentials' "
            "(access key id and secret).",
            details("credentials", "denied"),
        )
    if isinstance(exc, NoSuchBucket):
        return BucketNotFound(
            f"{endpoint} has no bucket {bucket!r}; create it first or fix '{field}.bucket'.",
            details("bucket", "no_such_bucket"),
        )
    if isinstance(exc, TargetRefused):
        return BucketUnreachable(
            f"'{field}.endpoint' may not be used: {exc}.", details("endpoint", "forbidden")
        )
    if isinstance(exc, Unreachable | TimeoutError):
        return BucketUnreachable(
            f"{endpoint} did not answer (refused or timed out); check '{field}.endpoint'.",
            details("endpoint", "unreachable"),
        )
    return BucketUnreachable(
        f"{endpoint} answered in a way Shells cannot use: {exc}", details("endpoint", "error")
    )


async def check_bucket(location: S3Location, field: str, timeout_s: float) -> None:
    """List one key of the bucket with the user's credentials within ``timeout_s``: the typed
    error of every way it fails (``bucket_error``)."""
    objects = S3Objects(location, timeout_s=timeout_s)
    try:
        with anyio.fail_after(timeout_s + 1):
            await objects.check()
    except (ObjectStoreError, OSError, TimeoutError) as exc:  # every failure has its code
        raise bucket_error(exc, location, field) from None
    finally:
        await objects.aclose()
