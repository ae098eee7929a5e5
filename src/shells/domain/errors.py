"""Every error Shells raises on purpose, each with a stable machine-readable code.

    ShellsError                      code                    meaning
    ├── InvalidRequest               invalid_request         the input is malformed or out of range
    │   ├── InvalidPath              invalid_path            a file path is unsafe or malformed
    │   ├── InvalidTemplateName      invalid_template_name   not 'name:tag', or illegal characters
    │   ├── InvalidTemplateSpec      invalid_template_spec   a template spec that does not parse or check
    │   ├── InvalidImageReference    invalid_image_reference an image reference that does not parse
    │   ├── InvalidDockerfile        invalid_dockerfile      a Dockerfile line that is unsupported or bad
    │   ├── UnknownRegion            unknown_region          a region this instance has no node in
    │   ├── BucketDenied             bucket_denied           a user's bucket (mount or sync) refused the
    │   │                                                    credentials (details: field, reason)
    │   └── BucketUnreachable        bucket_unreachable      a user's bucket endpoint did not answer, may not
    │                                                        be reached from here, or answered unusably
    │                                                        (details.reason: unreachable|forbidden|error)
    ├── AuthError                    auth_error              (abstract) who is asking, or what they may do
    │   ├── Unauthenticated          unauthenticated         no token, or a token that is unknown
    │   │   ├── CredentialExpired    credential_expired      the token or terminal credential expired
    │   │   └── CredentialRevoked    credential_revoked      the token or terminal credential was revoked
    │   └── PermissionDenied         permission_denied       the token (scope) or principal (role) may not
    ├── NotFound                     not_found               (abstract) something does not exist
    │   ├── ShellNotFound            shell_not_found
    │   ├── SnapshotNotFound         snapshot_not_found
    │   ├── TemplateNotFound         template_not_found
    │   ├── FileNotFound             file_not_found
    │   ├── TenantNotFound           tenant_not_found
    │   ├── PrincipalNotFound        principal_not_found
    │   ├── TokenNotFound            token_not_found
    │   ├── GrantNotFound            grant_not_found
    │   ├── CredentialNotFound       credential_not_found    (a terminal credential)
    │   ├── NetworkNotFound          network_not_found
    │   ├── PortNotExposed           port_not_exposed
    │   ├── WebhookNotFound          webhook_not_found
    │   ├── BucketNotFound           bucket_not_found        a user's bucket (mount or sync) does not exist
    │   ├── BucketCredentialsNotFound bucket_credentials_not_found  no stored bucket credentials of that name
    │   └── VolumeNotFound           volume_not_found
    ├── Conflict                     conflict                (abstract) the state does not allow it
    │   ├── InvalidState             invalid_state           the action is not allowed in this state
    │   ├── ActionNotSupported       action_not_supported    the isolation class cannot do this
    │   ├── FeatureUnavailable       feature_unavailable     this host cannot provide it (yet)
    │   ├── AlreadyExists            already_exists          a tenant of that name exists
    │   ├── CredentialInUse          credential_in_use       a terminal credential is attached already
    │   ├── TemplateExists           template_exists         the template name is taken
    │   ├── TemplateInUse            template_in_use         shells or templates still use the template
    │   ├── TemplateNotBuilt         template_not_built      a built-in template that must be built first
    │   ├── NetworkExists            network_exists          the tenant already has a network of that name
    │   ├── NetworkInUse             network_in_use          shells are still attached to the network
    │   ├── ShellBusy                shell_busy              too many calls open on the shell, or its restart
    │   │                                                    outlasted the wait; try again shortly
    │   ├── NoCapacity               no_capacity             no node in the region offers the class or has
    │                                                        room for the shape (details: region, shape)
    │   ├── VolumeExists             volume_exists           the tenant already has a volume of that name
    │   └── VolumeInUse              volume_in_use           a shell holds the volume (delete), or holds it
    │                                                        read-write (attach)
    ├── TemplateBuildFailed          template_build_failed   a build step failed (422); nothing registered
    ├── ImageRejected                image_rejected          an image Shells will not import: a layer with an
    │                                                        unsafe entry or a wrong digest, no manifest for
    │                                                        this platform (422, details name the layer)
    ├── RegistryDenied               registry_denied         the registry refused the credentials (403)
    ├── ImageNotFound                image_not_found         the registry has no such repository or tag (404)
    ├── RegistryError                registry_error          the registry could not be reached or answered
    │                                                        nonsense (502)
    ├── CommandNotFound              command_not_found       exec of a binary that does not exist
    ├── PayloadTooLarge              payload_too_large
    ├── QuotaExceeded                quota_exceeded          a tenant quota (details: limit, value)
    │   └── BudgetExceeded           budget_exceeded         the tenant's monthly budget cap is reached
    ├── RateLimited                  rate_limited            the token's request rate (details: limit, value)
    ├── RuntimeFailure               runtime_failure         the host runtime failed; the message says where
    ├── AgentError                   agent_error             the in-shell agent misbehaved or went away
    ├── Timeout                      timeout                 no answer in time (also a client timeout)
    │   └── RequestTimeout           request_timeout         the request body did not arrive in time (408)
    └── Unavailable                  unavailable             server unreachable, or connection dropped
        ├── ShuttingDown             shutting_down           the server is draining before it stops
        ├── RecordUnavailable        record_unavailable      the database did not answer; retry
        └── ObjectStoreUnavailable   object_store_unavailable the object store did not answer; retry
        └── ShuttingDown             shutting_down           the server is stopping; try again (Retry-After)

Messages are written for the person who has to fix the input: they say what was wrong and what to
send instead. Doors (REST, SDK, MCP) translate codes, never messages.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ShellsError(Exception):
    """Root of every deliberate Shells error."""

    code: ClassVar[str] = "internal"
    request_id: str | None = None
    """The id of the request this error answered (set by the SDK from ``X-Request-Id``)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(ShellsError):
    code = "invalid_request"


class InvalidPath(InvalidRequest):
    code = "invalid_path"


class InvalidTemplateName(InvalidRequest):
    code = "invalid_template_name"


class InvalidTemplateSpec(InvalidRequest):
    code = "invalid_template_spec"


class MisdirectedRequest(InvalidRequest):
    """The Host header names no host this server answers for (the MCP door's DNS-rebinding guard)."""

    code = "misdirected_request"


class InvalidImageReference(InvalidRequest):
    code = "invalid_image_reference"


class InvalidDockerfile(InvalidRequest):
    code = "invalid_dockerfile"


class UnknownRegion(InvalidRequest):
    code = "unknown_region"


class AuthError(ShellsError):
    code = "auth_error"


class Unauthenticated(AuthError):
    code = "unauthenticated"


class CredentialExpired(Unauthenticated):
    code = "credential_expired"


class CredentialRevoked(Unauthenticated):
    code = "credential_revoked"


class PermissionDenied(AuthError):
    code = "permission_denied"


class NotFound(ShellsError):
    code = "not_found"


class ShellNotFound(NotFound):
    code = "shell_not_found"


class SnapshotNotFound(NotFound):
    code = "snapshot_not_found"


class TemplateNotFound(NotFound):
    code = "template_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class PrincipalNotFound(NotFound):
    code = "principal_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class GrantNotFound(NotFound):
    code = "grant_not_found"


class CredentialNotFound(NotFound):
    code = "credential_not_found"


class NetworkNotFound(NotFound):
    code = "network_not_found"


class ProcessNotFound(NotFound):
    code = "process_not_found"


class PortNotExposed(NotFound):
    code = "port_not_exposed"


class SecretNotFound(NotFound):
    code = "secret_not_found"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class BucketDenied(InvalidRequest):
    code = "bucket_denied"


class BucketUnreachable(InvalidRequest):
    code = "bucket_unreachable"


class BucketNotFound(NotFound):
    code = "bucket_not_found"


class BucketCredentialsNotFound(NotFound):
    code = "bucket_credentials_not_found"


class VolumeNotFound(NotFound):
    code = "volume_not_found"


class Conflict(ShellsError):
    code = "conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class ActionNotSupported(Conflict):
    code = "action_not_supported"


class FeatureUnavailable(Conflict):
    code = "feature_unavailable"


class AlreadyExists(Conflict):
    code = "already_exists"


class CredentialInUse(Conflict):
    code = "credential_in_use"


class TemplateExists(Conflict):
    code = "template_exists"


class TemplateInUse(Conflict):
    code = "template_in_use"


class TemplateNotBuilt(Conflict):
    code = "template_not_built"


class NetworkExists(Conflict):
    code = "network_exists"


class NetworkInUse(Conflict):
    code = "network_in_use"


class ShellBusy(Conflict):
    code = "shell_busy"


class NoCapacity(Conflict):
    code = "no_capacity"


class VolumeExists(Conflict):
    code = "volume_exists"


class VolumeInUse(Conflict):
    code = "volume_in_use"


class TemplateBuildFailed(ShellsError):
    code = "template_build_failed"


class ImageRejected(ShellsError):
    code = "image_rejected"


class RegistryDenied(ShellsError):
    code = "registry_denied"


class ImageNotFound(ShellsError):
    code = "image_not_found"


class RegistryError(ShellsError):
    code = "registry_error"


class CommandNotFound(ShellsError):
    code = "command_not_found"


class PayloadTooLarge(ShellsError):
    code = "payload_too_large"


class QuotaExceeded(ShellsError):
    code = "quota_exceeded"


class BudgetExceeded(QuotaExceeded):
    code = "budget_exceeded"


class RateLimited(ShellsError):
    code = "rate_limited"


class RuntimeFailure(ShellsError):
    code = "runtime_failure"


class AgentError(ShellsError):
    code = "agent_error"


class Timeout(ShellsError):
    code = "timeout"


class RequestTimeout(Timeout):
    code = "request_timeout"


class Unavailable(ShellsError):
    code = "unavailable"


class ShuttingDown(Unavailable):
    code = "shutting_down"


class RecordUnavailable(Unavailable):
    """The database behind the record did not answer (restarting, failing over, unreachable). The
    transaction that met it was rolled back, so sending the request again is safe once it is back."""

    code = "record_unavailable"


class ObjectStoreUnavailable(Unavailable):
    """The instance's object store did not answer or refused a request (docs/storage.md): what
    needed it (fetching a snapshot another machine took) did nothing; retry once it is back."""

    code = "object_store_unavailable"


class SnapshotNotPlaceable(Conflict):
    """A shell from this snapshot has no node to go to: the nodes that hold it cannot take the shell
    (full, cordoned, in another region, a class they do not run) and no other can fetch it (it is
    not in the object store yet, or every node that could take it runs microvms on another machine)."""

    code = "snapshot_not_placeable"


class SnapshotUnreachable(Unavailable):
    """The snapshot is on no node that answers now and not in the object store: retry once its node
    is back, or once the snapshot is durable."""

    code = "snapshot_unreachable"


def _all_error_classes() -> list[type[ShellsError]]:
    found: list[type[ShellsError]] = []
    pending: list[type[ShellsError]] = [ShellsError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


ERRORS_BY_CODE: dict[str, type[ShellsError]] = {cls.code: cls for cls in _all_error_classes()}
"""Code → class, so every door (and the SDK) can turn a wire error back into the same exception."""
