// @shells/sdk: the TypeScript SDK of Shells. See docs/sdk-typescript.md.
import { Shells } from "./client.js";

export { Shells, createBody, type CreateOptions, type Language, type Runtime, type ShapeName } from "./client.js";
export { Commands, type OutputCallbacks, type RunCodeOptions, type RunOptions } from "./commands.js";
export * from "./errors.js";
export { Files, type WriteOptions } from "./files.js";
export type { Operations, Query, RequestBody, Schemas } from "./generated/openapi.js";
export { DOOR_HEADER, REQUEST_ID_HEADER, VERSION, type CallOptions, type ClientOptions, type Content, type RequestOptions } from "./http.js";
export type * from "./models.js";
export { BucketCredentials, Networks, Snapshots, Templates, Volumes } from "./resources.js";
export { RetryPolicy, type RetryOptions } from "./retry.js";
export { Actions, Ports, Shell, Terminals, type ActionName, type ActionParams, type NetworkMode } from "./shell.js";
export { Terminal, type TerminalExit, type TerminalOptions } from "./terminal.js";

/** The product page's name for the client. */
export const ShellsClient = Shells;
export type ShellsClient = Shells;
export default Shells;
