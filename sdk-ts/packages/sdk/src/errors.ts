// Every error the server raises on purpose arrives as the class of its stable `code`, the same tree as
// the server's (src/shells/domain/errors.py; tests/unit/test_sdk_ts_errors.py keeps the two equal), so
// `catch (e) { if (e instanceof NotFound) … }` also catches a newer server's `gizmo_not_found` by its
// HTTP status. Failures that got no answer are `Unavailable` or `Timeout`. Every error carries the id
// of its request (`requestId`), which is also in the server's log.

/** The root of every Shells error. */
export class ShellsError extends Error {
  static readonly code: string = "internal";
  /** The stable machine-readable code (`shell_not_found`, …). */
  readonly code: string;
  /** What the server added: the field at fault, a limit and its value, … */
  readonly details: Record<string, unknown>;
  /** The id of the request this error answered (`X-Request-Id`), when there was one. */
  requestId: string | undefined;
  /** The HTTP status of the answer, when there was one. */
  status: number | undefined;

  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = (new.target as typeof ShellsError).code;
    this.details = details;
    this.requestId = undefined;
    this.status = undefined;
  }
}

export class InvalidRequest extends ShellsError {
  static override readonly code: string = "invalid_request";
}
export class InvalidPath extends InvalidRequest {
  static override readonly code: string = "invalid_path";
}
export class InvalidTemplateName extends InvalidRequest {
  static override readonly code: string = "invalid_template_name";
}
export class InvalidTemplateSpec extends InvalidRequest {
  static override readonly code: string = "invalid_template_spec";
}
export class MisdirectedRequest extends InvalidRequest {
  static override readonly code: string = "misdirected_request";
}
export class AuthError extends ShellsError {
  static override readonly code: string = "auth_error";
}
export class Unauthenticated extends AuthError {
  static override readonly code: string = "unauthenticated";
}
export class CredentialExpired extends Unauthenticated {
  static override readonly code: string = "credential_expired";
}
export class CredentialRevoked extends Unauthenticated {
  static override readonly code: string = "credential_revoked";
}
export class PermissionDenied extends AuthError {
  static override readonly code: string = "permission_denied";
}
export class NotFound extends ShellsError {
  static override readonly code: string = "not_found";
}
export class ShellNotFound extends NotFound {
  static override readonly code: string = "shell_not_found";
}
export class SnapshotNotFound extends NotFound {
  static override readonly code: string = "snapshot_not_found";
}
export class TemplateNotFound extends NotFound {
  static override readonly code: string = "template_not_found";
}
export class FileNotFound extends NotFound {
  static override readonly code: string = "file_not_found";
}
export class TenantNotFound extends NotFound {
  static override readonly code: string = "tenant_not_found";
}
export class PrincipalNotFound extends NotFound {
  static override readonly code: string = "principal_not_found";
}
export class TokenNotFound extends NotFound {
  static override readonly code: string = "token_not_found";
}
export class GrantNotFound extends NotFound {
  static override readonly code: string = "grant_not_found";
}
export class CredentialNotFound extends NotFound {
  static override readonly code: string = "credential_not_found";
}
export class NetworkNotFound extends NotFound {
  static override readonly code: string = "network_not_found";
}
export class PortNotExposed extends NotFound {
  static override readonly code: string = "port_not_exposed";
}
export class Conflict extends ShellsError {
  static override readonly code: string = "conflict";
}
export class InvalidState extends Conflict {
  static override readonly code: string = "invalid_state";
}
export class ActionNotSupported extends Conflict {
  static override readonly code: string = "action_not_supported";
}
export class FeatureUnavailable extends Conflict {
  static override readonly code: string = "feature_unavailable";
}
export class AlreadyExists extends Conflict {
  static override readonly code: string = "already_exists";
}
export class CredentialInUse extends Conflict {
  static override readonly code: string = "credential_in_use";
}
export class TemplateExists extends Conflict {
  static override readonly code: string = "template_exists";
}
export class TemplateInUse extends Conflict {
  static override readonly code: string = "template_in_use";
}
export class TemplateNotBuilt extends Conflict {
  static override readonly code: string = "template_not_built";
}
export class NetworkExists extends Conflict {
  static override readonly code: string = "network_exists";
}
export class NetworkInUse extends Conflict {
  static override readonly code: string = "network_in_use";
}
export class ShellBusy extends Conflict {
  static override readonly code: string = "shell_busy";
}
export class TemplateBuildFailed extends ShellsError {
  static override readonly code: string = "template_build_failed";
}
export class CommandNotFound extends ShellsError {
  static override readonly code: string = "command_not_found";
}
export class PayloadTooLarge extends ShellsError {
  static override readonly code: string = "payload_too_large";
}
export class QuotaExceeded extends ShellsError {
  static override readonly code: string = "quota_exceeded";
}
export class BudgetExceeded extends QuotaExceeded {
  static override readonly code: string = "budget_exceeded";
}
export class RateLimited extends ShellsError {
  static override readonly code: string = "rate_limited";
}
export class RuntimeFailure extends ShellsError {
  static override readonly code: string = "runtime_failure";
}
export class AgentError extends ShellsError {
  static override readonly code: string = "agent_error";
}
export class Timeout extends ShellsError {
  static override readonly code: string = "timeout";
}
export class RequestTimeout extends Timeout {
  static override readonly code: string = "request_timeout";
}
export class Unavailable extends ShellsError {
  static override readonly code: string = "unavailable";
}
export class ShuttingDown extends Unavailable {
  static override readonly code: string = "shutting_down";
}
export class InvalidImageReference extends InvalidRequest {
  static override readonly code: string = "invalid_image_reference";
}
export class InvalidDockerfile extends InvalidRequest {
  static override readonly code: string = "invalid_dockerfile";
}
export class SecretNotFound extends NotFound {
  static override readonly code: string = "secret_not_found";
}
export class WebhookNotFound extends NotFound {
  static override readonly code: string = "webhook_not_found";
}
export class ProcessNotFound extends NotFound {
  static override readonly code: string = "process_not_found";
}
export class ImageNotFound extends ShellsError {
  static override readonly code: string = "image_not_found";
}
export class ImageRejected extends ShellsError {
  static override readonly code: string = "image_rejected";
}
export class RegistryDenied extends ShellsError {
  static override readonly code: string = "registry_denied";
}
export class RegistryError extends ShellsError {
  static override readonly code: string = "registry_error";
}
export class RecordUnavailable extends Unavailable {
  static override readonly code: string = "record_unavailable";
}
export class UnknownRegion extends InvalidRequest {
  static override readonly code: string = "unknown_region";
}
export class NoCapacity extends Conflict {
  static override readonly code: string = "no_capacity";
}
export class ObjectStoreUnavailable extends Unavailable {
  static override readonly code: string = "object_store_unavailable";
}
export class SnapshotNotPlaceable extends Conflict {
  static override readonly code: string = "snapshot_not_placeable";
}
export class SnapshotUnreachable extends Unavailable {
  static override readonly code: string = "snapshot_unreachable";
}
export class BucketDenied extends InvalidRequest {
  static override readonly code: string = "bucket_denied";
}
export class BucketUnreachable extends InvalidRequest {
  static override readonly code: string = "bucket_unreachable";
}
export class BucketNotFound extends NotFound {
  static override readonly code: string = "bucket_not_found";
}
export class BucketCredentialsNotFound extends NotFound {
  static override readonly code: string = "bucket_credentials_not_found";
}
export class VolumeNotFound extends NotFound {
  static override readonly code: string = "volume_not_found";
}
export class VolumeExists extends Conflict {
  static override readonly code: string = "volume_exists";
}
export class VolumeInUse extends Conflict {
  static override readonly code: string = "volume_in_use";
}

type ErrorClass = typeof ShellsError;

const ALL: ErrorClass[] = [
  ShellsError,
  InvalidRequest,
  InvalidPath,
  InvalidTemplateName,
  InvalidTemplateSpec,
  MisdirectedRequest,
  AuthError,
  Unauthenticated,
  CredentialExpired,
  CredentialRevoked,
  PermissionDenied,
  NotFound,
  ShellNotFound,
  SnapshotNotFound,
  TemplateNotFound,
  FileNotFound,
  TenantNotFound,
  PrincipalNotFound,
  TokenNotFound,
  GrantNotFound,
  CredentialNotFound,
  NetworkNotFound,
  PortNotExposed,
  Conflict,
  InvalidState,
  ActionNotSupported,
  FeatureUnavailable,
  AlreadyExists,
  CredentialInUse,
  TemplateExists,
  TemplateInUse,
  TemplateNotBuilt,
  NetworkExists,
  NetworkInUse,
  ShellBusy,
  TemplateBuildFailed,
  CommandNotFound,
  PayloadTooLarge,
  QuotaExceeded,
  BudgetExceeded,
  RateLimited,
  RuntimeFailure,
  AgentError,
  Timeout,
  RequestTimeout,
  Unavailable,
  ShuttingDown,
  InvalidImageReference,
  InvalidDockerfile,
  SecretNotFound,
  WebhookNotFound,
  ProcessNotFound,
  ImageNotFound,
  ImageRejected,
  RegistryDenied,
  RegistryError,
  RecordUnavailable,
  UnknownRegion,
  NoCapacity,
  ObjectStoreUnavailable,
  SnapshotNotPlaceable,
  SnapshotUnreachable,
  BucketDenied,
  BucketUnreachable,
  BucketNotFound,
  BucketCredentialsNotFound,
  VolumeNotFound,
  VolumeExists,
  VolumeInUse,
];

/** Code → class, to turn a wire error back into the class the server raised. */
export const ERRORS_BY_CODE: ReadonlyMap<string, ErrorClass> = new Map(ALL.map((cls) => [cls.code, cls]));

const BY_STATUS: ReadonlyMap<number, ErrorClass> = new Map<number, ErrorClass>([
  [400, InvalidRequest],
  [401, Unauthenticated],
  [403, PermissionDenied],
  [404, NotFound],
  [409, Conflict],
  [413, PayloadTooLarge],
  [429, RateLimited],
  [500, RuntimeFailure],
  [503, Unavailable],
  [504, Timeout],
]);

/** The error for a decoded error `payload` (`{"error": {code, message, details}}`: a body, or an
 * NDJSON `error` line); a code this SDK does not know falls back to the class of the HTTP status. */
export function errorFromWire(status: number, payload: unknown, requestId: string | undefined): ShellsError {
  const err = isObject(payload) && isObject(payload.error) ? payload.error : undefined;
  let code = "";
  let message = `The server answered HTTP ${status} without an error body.`;
  let details: Record<string, unknown> = {};
  if (err && typeof err.code === "string") {
    code = err.code;
    message = typeof err.message === "string" && err.message ? err.message : code;
    details = isObject(err.details) ? { ...err.details } : {};
  }
  const cls = ERRORS_BY_CODE.get(code) ?? BY_STATUS.get(status) ?? ShellsError;
  if (code && code !== cls.code && details.code === undefined) details.code = code;
  const error = new cls(message, details);
  error.requestId = requestId;
  error.status = status;
  return error;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
