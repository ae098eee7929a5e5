// Files in a shell: `shell.files`. Uploads and downloads stream, so their size is not bounded by memory.
import { createReadStream, createWriteStream } from "node:fs";
import { Readable, Writable } from "node:stream";

import { FileNotFound } from "./errors.js";
import { readBody, type CallOptions, type Content, type HTTP } from "./http.js";
import { camel, type FileEntry } from "./models.js";

export interface WriteOptions extends CallOptions {
  /** Permission bits (0o644 by default). */
  mode?: number;
}

/** The file tree of one shell; relative paths are relative to `/workspace`. Every method rejects with
 * `ShellNotFound`, `InvalidState` (not running) and `InvalidPath`; the others are listed below. */
export class Files {
  readonly #http: HTTP;
  readonly #path: string;

  constructor(http: HTTP, shellPath: string) {
    this.#http = http;
    this.#path = `${shellPath}/files`;
  }

  /** The whole content of a file (see `readStream` / `download` for large ones).
   * Rejects with `FileNotFound`, or `PayloadTooLarge` past what the server sends (512 MiB). */
  async read(path: string, options: CallOptions = {}): Promise<Uint8Array> {
    const response = await this.#http.send("GET", this.#path, { query: { path }, signal: options.signal });
    return new Uint8Array(await readBody(response, () => response.arrayBuffer(), options.signal));
  }

  /** The content of a text file, decoded as UTF-8. */
  async readText(path: string, options: CallOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  /** A file's content as a stream; a connection lost on the way makes the stream fail, never end early. */
  async readStream(path: string, options: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#http.send("GET", this.#path, { query: { path }, signal: options.signal });
    return response.body!;
  }

  /** Copy a file out of the shell into `localPath`, streaming it; resolve with its size. */
  async download(path: string, localPath: string, options: CallOptions = {}): Promise<number> {
    const response = await this.#http.send("GET", this.#path, { query: { path }, signal: options.signal });
    let size = 0;
    const counted = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          size += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
    await readBody(response, () => counted.pipeTo(Writable.toWeb(createWriteStream(localPath))), options.signal);
    return size;
  }

  /** Create or replace a file (text is written as UTF-8) and resolve with its size. The file appears
   * whole or not at all; its directory must exist (see `mkdir`). `data` may be a stream, or a
   * function that opens one (then a retried attempt sends it again from the start).
   * Rejects with `FileNotFound` (no such directory) or `InvalidRequest` (a directory, a bad mode). */
  async write(path: string, data: Content, options: WriteOptions = {}): Promise<number> {
    const mode = (options.mode ?? 0o644).toString(8);
    const answer = await this.#http.call<{ size: number }>("PUT", this.#path, {
      query: { path, mode },
      content: data,
      signal: options.signal,
    });
    return answer.size;
  }

  /** Copy a local file into the shell, streaming it; resolve with its size. */
  upload(localPath: string, path: string, options: WriteOptions = {}): Promise<number> {
    return this.write(path, () => Readable.toWeb(createReadStream(localPath)) as ReadableStream<Uint8Array>, options);
  }

  /** The entries of a directory, sorted by name. Rejects with `FileNotFound` or `InvalidRequest`. */
  async list(path = "/workspace", options: CallOptions = {}): Promise<FileEntry[]> {
    const answer = await this.#http.call<{ entries: unknown[] }>("GET", `${this.#path}/list`, { query: { path }, signal: options.signal });
    return camel<FileEntry[]>(answer.entries);
  }

  /** What a path is: kind, size, mode, modification time. Rejects with `FileNotFound`. */
  async stat(path: string, options: CallOptions = {}): Promise<FileEntry> {
    return camel<FileEntry>(await this.#http.call("GET", `${this.#path}/stat`, { query: { path }, signal: options.signal }));
  }

  /** Whether a path exists in the shell. */
  async exists(path: string, options: CallOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (error) {
      if (error instanceof FileNotFound) return false;
      throw error;
    }
  }

  /** Create a directory and its missing parents (no error if it exists). */
  async mkdir(path: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("POST", `${this.#path}/mkdir`, { query: { path }, signal: options.signal });
  }

  /** Remove a file, or a directory (which must be empty unless `recursive`).
   * Rejects with `FileNotFound`, or `InvalidRequest` for a non-empty directory without `recursive`. */
  async remove(path: string, options: CallOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.#http.call("DELETE", this.#path, {
      query: { path, recursive: options.recursive ? "true" : "false" },
      signal: options.signal,
    });
  }
}
