"""A small HTTP/1.1 service for the ingress tests, run inside a network namespace.

    nsenter --net=NETNS python -m tests.support.http_service PORT

Listens on 127.0.0.1:PORT, prints ``ready`` once listening, and answers:

* ``GET /requests``: how many requests it has served (this one excluded), to prove refused requests
  never arrived;
* ``POST /echo``: the body back, copied as it arrives (so both directions stream at once);
* ``GET /stream?bytes=N``: N bytes of a repeating pattern;
* any request with ``Connection: upgrade``: ``101 Switching Protocols``, then every byte echoed;
* anything else: JSON ``{"method", "target", "headers"}`` of the request as it arrived.
"""

from __future__ import annotations

import asyncio
import json
import sys

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)
served = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global served
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except (asyncio.IncompleteReadError, OSError):
        writer.close()
        return
    request_line, *lines = head[:-4].split("\r\n")
    method, target, _ = request_line.split(" ")
    headers = [tuple(line.split(": ", 1)) for line in lines]
    named = {k.lower(): v for k, v in headers}
    count, served = served, served + 1
    try:
        if "upgrade" in named.get("connection", "").lower():
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            await echo(reader, writer, None)
        elif method == "POST" and target == "/echo":
            size = int(named["content-length"])
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            await echo(reader, writer, size)
        elif target.startswith("/stream?bytes="):
            size = int(target.partition("=")[2])
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            for offset in range(0, size, CHUNK):
                writer.write(PATTERN[: min(CHUNK, size - offset)])
                await writer.drain()
        else:
            answer: dict[str, object] = {"method": method, "target": target, "headers": headers}
            if target == "/requests":
                answer["count"] = count
            body = json.dumps(answer).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int | None) -> None:
    remaining = size
    while remaining is None or remaining > 0:
        chunk = await reader.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            return
        writer.write(chunk)
        await writer.drain()
        if remaining is not None:
            remaining -= len(chunk)


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
