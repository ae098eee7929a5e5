"""The real guest agent, started as a subprocess the way a container starts it, driven by the real client.

The agent runs from the source tree exactly as inside a shell (``cd <dir of guest> && python -E -s -m
guest.agent``), which also proves it imports nothing outside ``guest``. Set SHELLS_TEST_AGENT_PYTHON to run
it under another interpreter (the sandbox image has python3.13).

Waits are bounded everywhere: sockets have timeouts, process deaths are awaited on pidfds, and the client's
own deadlines stop any call that would hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pwd
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

import shells.guest
from shells.domain.errors import (
    AgentError,
    CommandNotFound,
    FileNotFound,
    InvalidPath,
    InvalidRequest,
    PayloadTooLarge,
    ProcessNotFound,
)
from shells.domain.execution import ExecExit, ExecSpec, ExecStarted, FileChange, OutputChunk, WindowSize
from shells.guest.execs import STANDARD_PATH
from shells.guest.protocol import (
    EXEC_CHUNK,
    FILE_CHUNK,
    HEADER,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    FrameKind,
    ProtocolError,
    decode_control,
    encode_control,
    encode_frame,
)
from shells.runtime.agent_client import AgentClient
from tests.support.root import needs_root

AGENT_PYTHON = os.environ.get("SHELLS_TEST_AGENT_PYTHON", sys.executable)
AGENT_CWD = Path(shells.guest.__file__).parent.parent
WAIT_S = 10.0


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    socket: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> AgentClient:
        return AgentClient(self.socket)

    def peak_memory_kib(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])

    def stop(self) -> int:
        """SIGTERM, which the agent answers by killing its children and exiting 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:  # e.g. unshare(1) ignores SIGTERM; --kill-child does the rest
            self.process.kill()
            code = self.process.wait(timeout=WAIT_S)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def start_agent(
    sock: str, wrapper: tuple[str, ...] = (), *, stdout: int, stderr: int | IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start the agent the way the container backend does: on a listening socket made for it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(sock)
        listener.listen(128)
        fd = listener.fileno()
        return subprocess.Popen(
            [*wrapper, AGENT_PYTHON, "-E", "-s", "-m", "guest.agent", "--listen-fd", str(fd)],
            cwd=AGENT_CWD,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(fd,),
        )


@contextlib.contextmanager
def running_agent(wrapper: tuple[str, ...] = ()) -> Iterator[Agent]:
    # Unix socket paths are limited to 108 bytes, so not under pytest's long tmp_path.
    directory = tempfile.mkdtemp(prefix="shells-agent-", dir="/tmp")
    sock = f"{directory}/agent.sock"
    log = Path(directory) / "agent.log"
    with log.open("wb") as stderr:
        process = start_agent(sock, wrapper, stdout=subprocess.PIPE, stderr=stderr)
    agent = Agent(process, sock, log)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], WAIT_S)
        assert ready, "the agent did not start"
        assert process.stdout.readline() == b"shells-agent ready\n", log.read_text()
        assert stat.S_ISSOCK(Path(sock).stat().st_mode)
        yield agent
    finally:
        agent.stop()
        shutil.rmtree(directory)


@pytest.fixture(scope="module")
def shared_agent() -> Iterator[Agent]:
    with running_agent() as agent:
        yield agent
        assert agent.process.poll() is None, "the agent died during the tests"
        assert agent.stop() == 0


@pytest.fixture
def agent(shared_agent: Agent) -> Agent:
    return shared_agent


@pytest.fixture
def own_agent() -> Iterator[Agent]:
    """A private agent for tests that kill it or measure its memory."""
    with running_agent() as agent:
        yield agent


@pytest.fixture
def client(agent: Agent) -> AgentClient:
    return agent.client()


def spec(argv: tuple[str, ...] | None = None, **kwargs: Any) -> ExecSpec:
    kwargs.setdefault("cwd", "/tmp")
    kwargs.setdefault("timeout_s", 30.0)
    return ExecSpec(argv=argv, **kwargs)


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def wait_dead(pid: int) -> None:
    """Block until pid has exited (zombie or gone), via a pidfd: no polling."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([pidfd], [], [], WAIT_S)
        assert ready, f"process {pid} is still alive"
    finally:
        os.close(pidfd)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


class Raw:
    """A hand-driven protocol connection, for what the client would never send."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(path)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def control(self, channel: int, message: dict[str, object]) -> None:
        self.send(encode_control(channel, message))

    def recv(self) -> Frame:
        """The next frame, passing over an exec's ``started`` announcement (its own test checks it)."""
        while True:
            while not self.frames:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise EOFError("the agent closed the connection")
                self.frames.extend(self.decoder.feed(data))
            frame = self.frames.pop(0)
            if frame.kind is not FrameKind.CONTROL or decode_control(frame.payload).get("op") != "started":
                return frame

    def final(self, channel: int) -> tuple[bytes, dict[str, object]]:
        """Collect a channel's output until its final control frame (frames of others are kept)."""
        output = b""
        others: list[Frame] = []
        while True:
            frame = self.recv()
            if frame.channel != channel:
                others.append(frame)
            elif frame.kind is FrameKind.CONTROL:
                self.frames[:0] = others
                return output, decode_control(frame.payload)
            else:
                output += frame.payload

    def wait_closed_by_agent(self) -> None:
        """Read until the agent hangs up (a socket timeout fails the test)."""
        with contextlib.suppress(ConnectionResetError):
            while self.sock.recv(1 << 16):
                pass

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw(agent: Agent) -> Iterator[Raw]:
    connection = Raw(agent.socket)
    try:
        yield connection
    finally:
        connection.close()


# --- basics ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ping_and_stats(agent: Agent, client: AgentClient) -> None:
    pong = await client.ping()
    assert pong["version"] == PROTOCOL_VERSION
    assert pong["pid"] == agent.pid
    assert isinstance(pong["uptime_s"], float)
    assert pong["uptime_s"] >= 0
    stats = await client.stats()
    assert set(stats) == {"loadavg", "mem_total_bytes", "mem_available_bytes", "processes", "uptime_s"}
    assert isinstance(stats["processes"], int)
    assert stats["processes"] > 0


@pytest.mark.anyio
async def test_wait_ready_waits_for_a_starting_agent() -> None:
    directory = tempfile.mkdtemp(prefix="shells-agent-", dir="/tmp")
    sock = f"{directory}/agent.sock"
    process = start_agent(sock, stdout=subprocess.DEVNULL)
    try:
        await AgentClient(sock).wait_ready(WAIT_S)
        assert (await AgentClient(sock).ping())["pid"] == process.pid
    finally:
        process.terminate()
        assert process.wait(timeout=WAIT_S) == 0
        shutil.rmtree(directory)


@pytest.mark.anyio
async def test_wait_ready_gives_up_at_its_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(AgentError, match="did not become ready"):
        await AgentClient(str(tmp_path / "nobody.sock")).wait_ready(0.3)
    assert time.monotonic() - started < 3


@pytest.mark.anyio
async def test_exec_argv_and_shell_string(client: AgentClient) -> None:
    result = await client.run(spec(("echo", "hello", "world")))
    assert result.stdout == b"hello world\n"
    assert result.stderr == b""
    assert result.exit == ExecExit(exit_code=0, duration_ms=result.exit.duration_ms)
    assert result.exit.duration_ms > 0
    result = await client.run(ExecSpec(command="echo out; echo err >&2; exit 3", cwd="/tmp"))
    assert (result.stdout, result.stderr, result.exit.exit_code) == (b"out\n", b"err\n", 3)


@pytest.mark.anyio
async def test_env_is_the_complete_environment(client: AgentClient) -> None:
    result = await client.run(spec(("env",), env={"FOO": "bar baz"}))
    assert sorted(result.stdout.decode().splitlines()) == ["FOO=bar baz", f"PATH={STANDARD_PATH}"]
    result = await client.run(spec(("/usr/bin/env",), env={"PATH": "/nowhere"}))
    assert result.stdout == b"PATH=/nowhere\n"
    with pytest.raises(CommandNotFound):  # the given PATH is the one searched
        await client.run(spec(("true",), env={"PATH": "/nowhere"}))


@pytest.mark.anyio
async def test_cwd(client: AgentClient, tmp_path: Path) -> None:
    result = await client.run(spec(("pwd",), cwd=str(tmp_path)))
    assert result.stdout == f"{tmp_path}\n".encode()
    with pytest.raises(FileNotFound, match="working directory"):
        await client.run(spec(("pwd",), cwd=str(tmp_path / "missing")))
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidRequest):
        await client.run(spec(("pwd",), cwd=str(tmp_path / "file")))


@pytest.mark.anyio
async def test_stdin(client: AgentClient) -> None:
    data = secrets.token_bytes(3 * 1024 * 1024 + 17)
    result = await client.run(spec(("cat",), stdin=data))
    assert result.stdout == data
    result = await client.run(spec(("cat",)))  # no stdin: /dev/null, so cat ends at once
    assert result.stdout == b""
    result = await client.run(ExecSpec(command="read line; echo got $line", stdin=b"hi\nrest", cwd="/tmp"))
    assert result.stdout == b"got hi\n"


@pytest.mark.anyio
async def test_stdin_left_unread_does_not_delay_the_exit(client: AgentClient) -> None:
    result = await client.run(spec(("true",), stdin=secrets.token_bytes(8 * 1024 * 1024)))
    assert result.exit.exit_code == 0


@pytest.mark.anyio
async def test_exit_codes_and_signals(client: AgentClient) -> None:
    assert (await client.run(ExecSpec(command="exit 42", cwd="/tmp"))).exit.exit_code == 42
    result = await client.run(ExecSpec(command="kill -TERM $$", cwd="/tmp"))
    assert (result.exit.exit_code, result.exit.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    assert not result.exit.timed_out


@pytest.mark.anyio
async def test_timeout_kills_the_whole_process_group(client: AgentClient) -> None:
    result = await client.run(ExecSpec(command="sleep 60 & echo $!; wait", cwd="/tmp", timeout_s=0.5))
    assert result.exit.timed_out
    assert (result.exit.exit_code, result.exit.signal) == (128 + signal.SIGKILL, signal.SIGKILL)
    assert 500 <= result.exit.duration_ms < 5000
    wait_dead(int(result.stdout))


@pytest.mark.anyio
async def test_exit_does_not_wait_for_a_daemon_holding_the_pipes(client: AgentClient) -> None:
    started = time.monotonic()
    result = await client.run(ExecSpec(command="setsid sleep 60 & echo $!", cwd="/tmp", timeout_s=20))
    daemon = int(result.stdout)
    try:
        assert time.monotonic() - started < 5
        assert result.exit.exit_code == 0
        assert not result.exit.timed_out
        assert result.exit.duration_ms < 5000
    finally:
        os.kill(daemon, signal.SIGKILL)


@pytest.mark.anyio
async def test_output_is_streamed_in_bounded_chunks(client: AgentClient) -> None:
    expected = "".join(f"{n}\n" for n in range(1, 200_001)).encode()
    chunks: list[OutputChunk] = []
    async with contextlib.aclosing(client.exec(spec(("seq", "1", "200000")))) as events:
        async for event in events:
            if isinstance(event, OutputChunk):
                chunks.append(event)
            elif isinstance(event, ExecExit):
                assert event.exit_code == 0
    assert len(chunks) > 1
    assert all(chunk.stream == "stdout" and 0 < len(chunk.data) <= EXEC_CHUNK for chunk in chunks)
    assert b"".join(chunk.data for chunk in chunks) == expected


@pytest.mark.anyio
async def test_output_cap(client: AgentClient) -> None:
    result = await client.run(spec(("head", "-c", "10000000", "/dev/zero"), output_cap_bytes=1000))
    assert result.stdout == b"\0" * 1000
    assert result.exit.truncated
    assert result.exit.exit_code == 0
    result = await client.run(ExecSpec(command="printf aaaa; printf bbbb >&2", output_cap_bytes=6, cwd="/"))
    assert len(result.stdout) + len(result.stderr) == 6  # the cap covers both streams together
    assert result.exit.truncated
    result = await client.run(spec(("printf", "abc"), output_cap_bytes=3))
    assert (result.stdout, result.exit.truncated) == (b"abc", False)


@pytest.mark.anyio
async def test_missing_programs(client: AgentClient, tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound, match="no-such-program"):
        await client.run(spec(("no-such-program",)))
    with pytest.raises(CommandNotFound):
        await client.run(spec((str(tmp_path / "missing"),)))
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(InvalidRequest, match="Permission denied"):
        await client.run(spec((str(script),)))
    script.chmod(0o755)
    assert (await client.run(spec((str(script),)))).stdout == b"hi\n"


# --- memory stays bounded ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_output_past_the_cap_is_discarded_not_buffered(own_agent: Agent) -> None:
    before = own_agent.peak_memory_kib()
    command = ("head", "-c", str(256 * 1024 * 1024), "/dev/zero")
    result = await own_agent.client().run(spec(command, output_cap_bytes=1024))
    assert (len(result.stdout), result.exit.truncated) == (1024, True)
    assert own_agent.peak_memory_kib() - before < 16 * 1024


def test_slow_reader_backpressures_the_process(own_agent: Agent) -> None:
    before = own_agent.peak_memory_kib()
    size = 128 * 1024 * 1024
    with raw(own_agent) as connection:
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = {"op": "exec", "argv": ["head", "-c", str(size), "/dev/zero"], "output_cap_bytes": size}
        connection.control(1, request)
        received = 0
        while True:
            frame = connection.recv()
            if frame.kind is FrameKind.CONTROL:
                break
            received += len(frame.payload)
        assert received == size
        assert decode_control(frame.payload)["exit_code"] == 0
    assert own_agent.peak_memory_kib() - before < 24 * 1024


@pytest.mark.anyio
async def test_large_stdin_through_a_pipe_keeps_memory_bounded(own_agent: Agent) -> None:
    before = own_agent.peak_memory_kib()
    data = secrets.token_bytes(48 * 1024 * 1024)
    result = await own_agent.client().run(spec(("cat",), stdin=data))
    assert result.stdout == data
    assert own_agent.peak_memory_kib() - before < 24 * 1024


def test_stdin_the_process_does_not_read_is_not_buffered(own_agent: Agent) -> None:
    before = own_agent.peak_memory_kib()
    with raw(own_agent) as connection:
        connection.control(1, {"op": "exec", "argv": ["sleep", "60"], "cwd": "/", "stdin": True})
        frame = encode_frame(1, FrameKind.STDIN, bytes(FILE_CHUNK))
        connection.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):  # the agent stops reading once ~1 MiB is queued for the process
            for _ in range(192):  # 48 MiB
                connection.sock.sendall(frame)
    assert own_agent.peak_memory_kib() - before < 8 * 1024


# --- cancellation and concurrency ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_closing_the_exec_early_kills_the_process(agent: Agent, client: AgentClient) -> None:
    async with contextlib.aclosing(
        client.exec(ExecSpec(command="echo $$; exec sleep 60", cwd="/"))
    ) as events:
        assert isinstance(await anext(events), ExecStarted)
        first = await anext(events)
        assert isinstance(first, OutputChunk)
        pid = int(first.data)
    wait_dead(pid)
    assert (await client.ping())["pid"] == agent.pid


def test_cancel_op_kills_the_process_group(agent: Agent) -> None:
    with raw(agent) as connection:
        connection.control(5, {"op": "exec", "argv": ["sh", "-c", "sleep 60 & echo $!; wait"], "cwd": "/"})
        background = int(connection.recv().payload)
        connection.control(5, {"op": "cancel"})
        _, exit_report = connection.final(5)
        assert exit_report["op"] == "exit"
        assert (exit_report["signal"], exit_report["timed_out"]) == (signal.SIGKILL, False)
        wait_dead(background)
        connection.control(5, {"op": "cancel"})  # a late cancel of an ended channel is ignored
        connection.control(6, {"op": "ping"})
        assert connection.final(6)[1]["op"] == "ok"


def test_concurrent_channels_on_one_connection(agent: Agent) -> None:
    with raw(agent) as connection:
        blocked = {"op": "exec", "argv": ["sh", "-c", "read x; echo got $x"], "cwd": "/", "stdin": True}
        connection.control(1, blocked)
        connection.control(2, {"op": "exec", "argv": ["echo", "two"], "cwd": "/"})
        connection.control(3, {"op": "ping"})
        output, exit_report = connection.final(2)
        assert (output, exit_report["op"], exit_report["exit_code"]) == (b"two\n", "exit", 0)
        assert connection.final(3)[1]["op"] == "ok"
        assert all(frame.channel == 1 for frame in connection.frames)  # channel 1 still waits for stdin
        connection.send(encode_frame(1, FrameKind.STDIN, b"one\n") + encode_frame(1, FrameKind.EOF))
        output, exit_report = connection.final(1)
        assert (output, exit_report["exit_code"]) == (b"got one\n", 0)


@pytest.mark.anyio
async def test_concurrent_calls_on_many_connections(client: AgentClient, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # The reader can only finish if the writer runs at the same time.
    reader = client.run(spec(("cat", str(fifo))))
    writer = client.run(ExecSpec(command=f"echo through > {fifo}", cwd="/"))
    echoes = [client.run(spec(("echo", str(n)))) for n in range(20)]
    results = await asyncio.wait_for(asyncio.gather(reader, writer, *echoes), WAIT_S)
    assert results[0].stdout == b"through\n"
    assert [result.stdout for result in results[2:]] == [f"{n}\n".encode() for n in range(20)]


# --- files ----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_write_and_read_a_large_file_in_chunks(client: AgentClient, tmp_path: Path) -> None:
    data = secrets.token_bytes(5 * 1024 * 1024 + 3)
    target = str(tmp_path / "big.bin")
    assert await client.write_file(target, chunks_of(data, MAX_PAYLOAD + 4096), mode=0o600) == len(data)
    assert Path(target).read_bytes() == data
    assert stat.S_IMODE(Path(target).stat().st_mode) == 0o600
    received = [chunk async for chunk in client.read_file(target, max_bytes=len(data))]
    assert all(0 < len(chunk) <= FILE_CHUNK for chunk in received)
    assert b"".join(received) == data
    assert names(tmp_path) == ["big.bin"]  # no temp file left


@pytest.mark.anyio
async def test_write_replaces_and_appends(client: AgentClient, tmp_path: Path) -> None:
    target = str(tmp_path / "f.txt")
    assert await client.write_file(target, chunks_of(b"first", 2)) == 5
    assert await client.write_file(target, chunks_of(b"second", 100)) == 6
    assert await client.write_file(target, chunks_of(b"+more", 100), append=True) == 5
    assert Path(target).read_bytes() == b"second+more"
    assert await client.write_file(str(tmp_path / "empty"), chunks_of(b"", 1)) == 0
    assert Path(tmp_path / "empty").read_bytes() == b""


@pytest.mark.anyio
async def test_failed_upload_leaves_no_file(client: AgentClient, tmp_path: Path) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        raise RuntimeError("upload source broke")

    with pytest.raises(RuntimeError, match="broke"):
        await client.write_file(str(tmp_path / "f"), failing())
    # The agent handles events in order: once a fresh connection got an answer, it has seen the old close.
    await client.ping()
    assert names(tmp_path) == []


@pytest.mark.anyio
async def test_read_file_limits_and_kinds(client: AgentClient, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 1000)
    with pytest.raises(PayloadTooLarge):
        _ = [chunk async for chunk in client.read_file(str(tmp_path / "f"), max_bytes=999)]
    with pytest.raises(FileNotFound):
        _ = [chunk async for chunk in client.read_file(str(tmp_path / "missing"), max_bytes=10)]
    with pytest.raises(InvalidRequest, match="directory"):
        _ = [chunk async for chunk in client.read_file(str(tmp_path), max_bytes=10)]
    os.mkfifo(tmp_path / "fifo")  # must be refused, not block the agent
    with pytest.raises(InvalidRequest, match="regular file"):
        _ = [chunk async for chunk in client.read_file(str(tmp_path / "fifo"), max_bytes=10)]
    assert [chunk async for chunk in client.read_file(str(tmp_path / "f"), max_bytes=1000)] == [b"x" * 1000]


@pytest.mark.anyio
async def test_list_and_stat(client: AgentClient, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_bytes(b"12345")
    (tmp_path / "a").mkdir()
    (tmp_path / "c").symlink_to("b.txt")
    entries = await client.list_dir(str(tmp_path))
    assert [(e.name, e.kind) for e in entries] == [("a", "dir"), ("b.txt", "file"), ("c", "symlink")]
    file_entry = entries[1]
    assert (file_entry.path, file_entry.size, file_entry.link_target) == (str(tmp_path / "b.txt"), 5, None)
    assert file_entry.mtime == pytest.approx((tmp_path / "b.txt").stat().st_mtime)
    assert entries[2].link_target == "b.txt"
    assert await client.stat(str(tmp_path / "c")) == entries[2]
    assert (await client.stat("/")).name == "/"
    with pytest.raises(FileNotFound):
        await client.stat(str(tmp_path / "missing"))
    with pytest.raises(InvalidRequest, match="not a directory"):
        await client.list_dir(str(tmp_path / "b.txt"))


@pytest.mark.anyio
async def test_a_listing_too_large_for_one_frame_is_refused(client: AgentClient, tmp_path: Path) -> None:
    for n in range(6000):
        (tmp_path / f"{n:0200}").touch()
    with pytest.raises(PayloadTooLarge):
        await client.list_dir(str(tmp_path))
    assert (await client.ping())["version"] == PROTOCOL_VERSION


@pytest.mark.anyio
async def test_mkdir_and_remove(client: AgentClient, tmp_path: Path) -> None:
    nested = tmp_path / "x" / "y" / "z"
    await client.mkdir(str(nested))
    await client.mkdir(str(nested))  # idempotent
    assert nested.is_dir()
    with pytest.raises(FileNotFound):
        await client.mkdir(str(tmp_path / "p" / "q"), parents=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidRequest, match="not a directory"):
        await client.mkdir(str(tmp_path / "file"))
    with pytest.raises(InvalidRequest, match="not empty"):
        await client.remove(str(tmp_path / "x"))
    await client.remove(str(tmp_path / "x"), recursive=True)
    await client.remove(str(tmp_path / "file"))
    assert names(tmp_path) == []
    with pytest.raises(FileNotFound):
        await client.remove(str(tmp_path / "file"))


@pytest.mark.anyio
async def test_recursive_remove_never_follows_symlinks(client: AgentClient, tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("x")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "link").symlink_to(tmp_path / "keep")
    await client.remove(str(tmp_path / "tree"), recursive=True)
    (tmp_path / "link").symlink_to(tmp_path / "keep")
    await client.remove(str(tmp_path / "link"), recursive=True)
    assert names(tmp_path) == ["keep"]
    assert (tmp_path / "keep" / "precious").exists()


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["relative/path", "/tmp/../etc/passwd", "/tmp/a\0b", ""])
async def test_unsafe_paths_are_refused(client: AgentClient, path: str) -> None:
    with pytest.raises(InvalidPath):
        await client.stat(path)
    with pytest.raises(InvalidPath):
        await client.write_file(path, chunks_of(b"x", 1))


@pytest.mark.anyio
async def test_proc_and_sys_cannot_be_changed(client: AgentClient, tmp_path: Path) -> None:
    (tmp_path / "sneaky").symlink_to("/proc/self")
    for path in ["/proc/self/comm", "/sys/kernel/x", str(tmp_path / "sneaky" / "comm")]:
        with pytest.raises(InvalidPath, match="/proc or /sys"):
            await client.write_file(path, chunks_of(b"x", 1))
    with pytest.raises(InvalidPath):
        await client.mkdir("/sys/new")
    with pytest.raises(InvalidPath):
        await client.remove("/proc", recursive=True)
    with pytest.raises(InvalidPath):
        await client.remove("/", recursive=True)
    assert (await client.stat("/proc/self")).kind == "symlink"  # reading is fine


@pytest.mark.anyio
async def test_write_errors(client: AgentClient, tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        await client.write_file(str(tmp_path / "missing" / "f"), chunks_of(b"x", 1))
    with pytest.raises(InvalidRequest, match="directory"):
        await client.write_file(str(tmp_path), chunks_of(b"x", 1))
    assert names(tmp_path) == []


# --- a misbehaving host -----------------------------------------------------------------------------------


BAD_FRAMES = {
    "oversized": HEADER.pack(MAX_PAYLOAD + 10, 1, FrameKind.DATA),
    "too short": HEADER.pack(8, 1, FrameKind.CONTROL),
    "unknown kind": HEADER.pack(9, 1, 42),
    "wrong direction": encode_frame(1, FrameKind.STDOUT, b"x"),
    "channel already open": encode_control(1, {"op": "exec", "argv": ["sleep", "60"], "cwd": "/"})
    + encode_control(1, {"op": "ping"}),
    "stdin not asked for": encode_control(1, {"op": "exec", "argv": ["sleep", "60"], "cwd": "/"})
    + encode_frame(1, FrameKind.STDIN, b"x"),
}


@pytest.mark.parametrize("garbage", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_frames_close_only_that_connection(agent: Agent, garbage: bytes) -> None:
    logged_before = agent.log.read_text().count("protocol error")
    with raw(agent) as bystander, raw(agent) as offender:
        offender.send(garbage)
        offender.wait_closed_by_agent()
        bystander.control(9, {"op": "ping"})
        assert bystander.final(9)[1]["op"] == "ok"
    assert agent.log.read_text().count("protocol error") == logged_before + 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"op": "format_disk"}', "Unknown op"),
        (b'{"op": "exec"}', "'argv' is required"),
        (b'{"op": "exec", "argv": []}', "non-empty"),
        (b'{"op": "exec", "argv": ["true"], "output_cap_bytes": true}', "must be an integer"),
        (b'{"op": "exec", "argv": ["true"], "timeout_s": -1}', "positive"),
        (b'{"op": "exec", "argv": ["true"], "env": {"A=B": "c"}}', "'env'"),
        (b'{"op": "write_file", "path": "/tmp/x", "mode": 65536}', "'mode'"),
        (b'{"op": "stat", "path": 5}', "must be a string"),
        (b'{"op": "stat", "path": "/tmp/\\ud800"}', "surrogate"),
        (b'{"op": "exec", "argv": ["true"], "env": {"A": "\\ud800"}}', "surrogate"),
        (b'{"op": "exec", "argv": ["\\ud800"]}', "surrogate"),
    ],
)
def test_bad_requests_get_an_error_and_keep_the_connection(agent: Agent, message: bytes, reason: str) -> None:
    with raw(agent) as connection:
        connection.send(encode_frame(4, FrameKind.CONTROL, message))
        _, reply = connection.final(4)
        assert reply["op"] == "error"
        assert reply["code"] == "invalid_request"
        assert reason in str(reply["message"])
        connection.control(4, {"op": "ping"})  # the id is free again
        assert connection.final(4)[1]["op"] == "ok"


def test_late_frames_for_an_ended_channel_are_ignored(agent: Agent) -> None:
    with raw(agent) as connection:
        connection.control(1, {"op": "exec", "argv": ["true"], "cwd": "/", "stdin": True})
        connection.send(encode_frame(1, FrameKind.STDIN, b"x" * 1000))
        assert connection.final(1)[1]["op"] == "exit"  # true exits without reading: stdin hits EPIPE
        connection.send(encode_frame(1, FrameKind.STDIN, b"late") + encode_frame(1, FrameKind.EOF))
        connection.send(encode_frame(77, FrameKind.DATA, b"never opened"))
        connection.control(2, {"op": "ping"})
        assert connection.final(2)[1]["op"] == "ok"


# --- the agent's own lifecycle, and a dead or lying agent ---------------------------------------------------


def test_sigterm_kills_children_and_exits_zero(own_agent: Agent) -> None:
    with raw(own_agent) as connection:
        connection.control(1, {"op": "exec", "argv": ["sh", "-c", "echo $$; exec sleep 60"], "cwd": "/"})
        child = int(connection.recv().payload)
        assert own_agent.stop() == 0
        wait_dead(child)
    # The agent held the only copy of the listening socket (none leaked to its children).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(own_agent.socket)


@pytest.mark.anyio
async def test_as_pid_1_it_reaps_orphans() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to run the agent as PID 1 of a PID namespace")
    with running_agent(("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")) as agent:
        client = agent.client()
        assert (await client.ping())["pid"] == 1
        # The shell exits at once, so its background child is reparented to the agent.
        result = await client.run(ExecSpec(command="setsid sleep 60 >/dev/null 2>&1 & echo $!", cwd="/"))
        orphan = int(result.stdout)
        # Unreaped, the orphan would stay a zombie with a /proc entry; the wait is bounded by timeout_s.
        reaped = f"kill -9 {orphan}; while [ -e /proc/{orphan} ]; do :; done"
        result = await client.run(ExecSpec(command=reaped, cwd="/", timeout_s=5))
        assert not result.exit.timed_out
        (agent_pid,) = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
        os.kill(int(agent_pid), signal.SIGTERM)
        assert agent.process.wait(timeout=WAIT_S) == 0


@pytest.mark.anyio
async def test_a_dying_agent_raises_agent_error(own_agent: Agent) -> None:
    client = own_agent.client()
    async with contextlib.aclosing(
        client.exec(ExecSpec(command="echo $$; exec sleep 60", cwd="/"))
    ) as events:
        assert isinstance(await anext(events), ExecStarted)
        first = await anext(events)
        assert isinstance(first, OutputChunk)
        own_agent.process.kill()
        with pytest.raises(AgentError, match="closed the connection"):
            await anext(events)
    os.kill(int(first.data), signal.SIGKILL)
    own_agent.process.wait(timeout=WAIT_S)
    with pytest.raises(AgentError, match="Cannot reach"):
        await client.ping()


def _on_channel(reply: bytes, channel: int) -> bytes:
    """``reply``'s frames moved to ``channel``; what is not whole frames stays as it is."""
    try:
        frames = FrameDecoder().feed(reply)
    except ProtocolError:
        return reply
    return b"".join(encode_frame(channel, f.kind, f.payload) for f in frames) if frames else reply


@contextlib.asynccontextmanager
async def fake_agent(tmp_path: Path, reply: bytes | None) -> AsyncIterator[str]:
    """A unix server that answers the first request with ``reply`` and hangs up (None: stays silent).
    A reply's frame header gets the request's (random) channel id."""
    path = str(tmp_path / "fake.sock")
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(1 << 16)
        if reply is None:
            await done.wait()
        else:
            writer.write(_on_channel(reply, HEADER.unpack_from(request)[1]))
        writer.close()

    server = await asyncio.start_unix_server(handle, path)
    try:
        yield path
    finally:
        done.set()
        server.close()
        await server.wait_closed()


LIES = {
    "oversized frame": (HEADER.pack(MAX_PAYLOAD + 10, 1, FrameKind.CONTROL), "broke the protocol"),
    "not json": (encode_frame(1, FrameKind.CONTROL, b"{"), "malformed"),
    "wrong op": (encode_control(1, {"op": "exit", "exit_code": 0}), "'exit' where 'ok'"),
    "foreign error code": (
        encode_control(1, {"op": "error", "code": "unauthenticated", "message": "who are you"}),
        "who are you",
    ),
    "hang up": (b"", "closed the connection"),
    "silence": (None, "did not answer in time"),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "reason"), LIES.values(), ids=LIES.keys())
async def test_client_distrusts_the_agent(tmp_path: Path, reply: bytes | None, reason: str) -> None:
    async with fake_agent(tmp_path, reply) as path:
        started = time.monotonic()
        with pytest.raises(AgentError, match=reason) as caught:
            await AgentClient(path).ping(timeout_s=0.5)
        assert type(caught.value) is AgentError
        assert time.monotonic() - started < 3


@pytest.mark.anyio
async def test_unreachable_agent(tmp_path: Path) -> None:
    (tmp_path / "not-a-socket").touch()
    for path in [tmp_path / "missing.sock", tmp_path / "not-a-socket"]:
        with pytest.raises(AgentError, match="Cannot reach"):
            await AgentClient(str(path)).ping()


@pytest.mark.anyio
async def test_client_rejects_a_malformed_exit_report(tmp_path: Path) -> None:
    started = encode_control(1, {"op": "started", "pid": 42})
    lie = encode_control(1, {"op": "exit", "exit_code": "zero", "timed_out": False})
    async with fake_agent(tmp_path, started + lie) as path:
        with pytest.raises(AgentError, match="malformed exit report"):
            await AgentClient(path).run(spec(("true",)))


@pytest.mark.anyio
async def test_client_rejects_a_start_report_without_a_pid(tmp_path: Path) -> None:
    lie = encode_control(1, {"op": "started", "pid": "one"})
    async with fake_agent(tmp_path, lie) as path:
        with pytest.raises(AgentError, match="valid pid"):
            await AgentClient(path).run(spec(("true",)))


@pytest.mark.anyio
async def test_an_exec_announces_its_pid_before_any_output(client: AgentClient) -> None:
    async with contextlib.aclosing(client.exec(ExecSpec(command="echo $$", cwd="/"))) as events:
        started = await anext(events)
        assert isinstance(started, ExecStarted)
        chunk = await anext(events)
        assert isinstance(chunk, OutputChunk)
        assert int(chunk.data) == started.pid


# --- what E2B code relies on: users, signals, later stdin, terminals, rename, xattrs, watches ----------


@pytest.mark.anyio
@needs_root("the agent switches to another user")
async def test_a_command_runs_as_a_named_user_with_its_identity(client: AgentClient, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    result = await client.run(ExecSpec(command="id -u; id -g; echo $HOME $USER", cwd="/", user="nobody"))
    assert result.stdout.decode().split() == [str(nobody.pw_uid), str(nobody.pw_gid), nobody.pw_dir, "nobody"]
    with pytest.raises(InvalidRequest, match="no user"):
        await client.run(ExecSpec(command="true", cwd="/", user="no-such-user"))
    await client.write_file(str(tmp_path / "f"), _one_chunk(b"x"), owner="nobody")
    assert (tmp_path / "f").stat().st_uid == nobody.pw_uid


@pytest.mark.anyio
async def test_signals_reach_only_the_agents_own_running_processes(client: AgentClient) -> None:
    events = client.exec(ExecSpec(argv=("sleep", "30"), cwd="/"))
    started = await anext(events)
    assert isinstance(started, ExecStarted)
    with pytest.raises(ProcessNotFound):
        await client.signal(os.getpid(), signal.SIGTERM)  # not one it started
    with pytest.raises(InvalidRequest):
        await client.signal(started.pid, signal.SIGSTOP)
    await client.signal(started.pid, signal.SIGTERM)
    rest = [e async for e in events]
    assert isinstance(rest[-1], ExecExit) and rest[-1].signal == signal.SIGTERM
    with pytest.raises(ProcessNotFound):
        await client.signal(started.pid, signal.SIGTERM)  # reaped: its pid is no longer its


@pytest.mark.anyio
async def test_stdin_arrives_while_it_runs_and_a_terminal_resizes(client: AgentClient) -> None:
    queue: asyncio.Queue[bytes | WindowSize | None] = asyncio.Queue()

    async def more() -> AsyncIterator[bytes | WindowSize]:
        while (item := await queue.get()) is not None:
            yield item

    spec = ExecSpec(
        command="read a; stty size; read b; stty size", cwd="/", pty=WindowSize(80, 24), stdin_stream=more()
    )
    events = client.exec(spec)
    await anext(events)
    await queue.put(b"one\n")
    await asyncio.sleep(0.3)
    await queue.put(WindowSize(100, 30))
    await queue.put(b"two\n")
    output = b"".join([e.data async for e in events if isinstance(e, OutputChunk)])
    assert b"24 80" in output and b"30 100" in output, output


@pytest.mark.anyio
async def test_rename_and_extended_attributes(client: AgentClient, tmp_path: Path) -> None:
    await client.write_file(
        str(tmp_path / "a"), _one_chunk(b"1"), xattrs={"user.e2b.k": "v", "user.other": "o"}
    )
    moved = await client.rename(str(tmp_path / "a"), str(tmp_path / "b"))
    assert moved.path == str(tmp_path / "b") and not (tmp_path / "a").exists()
    assert (await client.stat(str(tmp_path / "b"), "user.e2b.")).metadata == {"k": "v"}
    assert (await client.stat(str(tmp_path / "b"))).metadata is None
    listed = await client.list_dir(str(tmp_path), "user.e2b.")
    assert [(e.name, e.metadata) for e in listed] == [("b", {"k": "v"})]
    with pytest.raises(FileNotFound):
        await client.rename(str(tmp_path / "missing"), str(tmp_path / "c"))
    with pytest.raises(InvalidRequest):
        await client.write_file(str(tmp_path / "c"), _one_chunk(b"1"), xattrs={"trusted.x": "v"})


@pytest.mark.anyio
async def test_a_watch_reports_changes_below_it_until_closed(client: AgentClient, tmp_path: Path) -> None:
    changes = client.watch(str(tmp_path), recursive=True)
    assert await anext(changes) is None  # in place
    (tmp_path / "sub").mkdir()
    await asyncio.sleep(0.2)
    await client.write_file(str(tmp_path / "sub" / "f"), _one_chunk(b"x"))
    (tmp_path / "sub" / "f").unlink()
    seen: list[FileChange] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            async for change in changes:
                if change is not None:
                    seen.append(change)
                if change is not None and change.kind == "remove":
                    break
    await changes.aclose()
    assert [(c.name, c.kind) for c in seen] == [
        ("sub", "create"), ("sub/f", "create"), ("sub/f", "write"), ("sub/f", "remove")
    ]  # fmt: skip
    with pytest.raises(FileNotFound):
        await anext(client.watch(str(tmp_path / "missing")))


@pytest.mark.anyio
async def test_the_host_refuses_unbounded_xattrs_and_unknown_changes(tmp_path: Path) -> None:
    entry = {"path": "/f", "name": "f", "kind": "file", "size": 0, "mode": 420, "mtime": 0.0}
    huge = encode_control(1, {"op": "ok", "entry": entry | {"xattrs": {f"k{i}": "v" for i in range(65)}}})
    async with fake_agent(tmp_path, huge) as path:
        with pytest.raises(AgentError, match="malformed"):
            await AgentClient(path).stat("/f", "user.e2b.")


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.anyio
async def test_a_kept_process_outlives_its_call_and_is_attached_again(client: AgentClient) -> None:
    spec = ExecSpec(command="read line; echo got $line", cwd="/", keep=True, tag="reader", stdin=b"")
    spec = dataclasses.replace(spec, stdin_stream=_forever())
    events = client.exec(spec)
    started = await anext(events)
    assert isinstance(started, ExecStarted)
    await events.aclose()  # the call ends; the process does not
    listed = await client.processes()
    assert [(p.pid, p.tag, p.attached) for p in listed] == [(started.pid, "reader", False)]
    feed: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def more() -> AsyncIterator[bytes]:
        while (chunk := await feed.get()) is not None:
            yield chunk

    again = client.attach(started.pid, more())
    assert await anext(again) == ExecStarted(started.pid)
    with pytest.raises(InvalidRequest, match="attached to another"):
        await anext(client.attach(started.pid))
    await feed.put(b"hello\n")
    rest = [e async for e in again]
    assert b"".join(e.data for e in rest if isinstance(e, OutputChunk)) == b"got hello\n"
    assert isinstance(rest[-1], ExecExit) and rest[-1].exit_code == 0
    assert await client.processes() == []
    with pytest.raises(ProcessNotFound):
        await anext(client.attach(started.pid))


async def _forever() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""
