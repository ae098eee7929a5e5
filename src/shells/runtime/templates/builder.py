"""Build a template from a spec inside a sandbox, never on the host.

A build is a shell like any other: created from the parent template through the backend, with
outbound network and the instance's shared apt caches mounted; every step runs through the guest
agent (exec, files); the finished root filesystem is captured as a new read-only template; the build
shell is destroyed whatever happened. A failed step raises ``TemplateBuildFailed`` naming the step and
the tail of its output, and nothing is registered.
"""

from __future__ import annotations

import codecs
import posixpath
from collections.abc import AsyncIterable, Callable
from dataclasses import replace
from functools import partial

import anyio

from ...domain.errors import TemplateBuildFailed
from ...domain.execution import ExecExit, ExecSpec, OutputChunk
from ...domain.ids import new_id
from ...domain.network import NetworkAccess, NetworkMode
from ...domain.shapes import get_shape
from ...domain.templates import (
    BuildOutput,
    BuildProgress,
    BuildStepStarted,
    FilesStep,
    RunStep,
    TemplateKind,
    TemplateMeta,
    TemplateSpec,
    VersionsStep,
    derive_meta,
    plan_steps,
)
from ..backend import Backend, ShellSpec

BUILD_SHAPE = "s-2vcpu-2gb"
BUILD_CACHE_DIRS = ("/var/cache/apt/archives", "/var/lib/apt/lists")
"""Shared by every build shell of an instance, so a run downloads each .deb (and the index) once."""
STEP_TIMEOUT_S = 1800.0
VERSION_TIMEOUT_S = 60.0
OUTPUT_TAIL_CHARS = 4000
BUILD_SHELL_PREFIX = "bld"


class TemplateBuilder:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @staticmethod
    def step_count(spec: TemplateSpec) -> int:
        """Steps a build of ``spec`` reports: the build shell's start, the plan, and the capture."""
        return len(plan_steps(spec)) + 2

    async def build(
        self,
        *,
        name: str,
        kind: TemplateKind,
        content_hash: str,
        spec: TemplateSpec,
        parent: TemplateMeta,
        progress: BuildProgress,
        extra_steps: int = 0,
    ) -> TemplateMeta:
        """Build ``spec`` on ``parent`` and capture it as template ``name``.

        Step numbering counts the build shell's start, every planned step, the capture, and
        ``extra_steps`` the caller reports after this returns (e.g. caching the result)."""
        steps = plan_steps(spec)
        total = self.step_count(spec) + extra_steps
        meta = derive_meta(name, kind, content_hash, spec, parent)
        progress(BuildStepStarted(1, total, f"start a build shell from {parent.name}"))
        host_id = await self.start_shell(parent.name)
        try:
            await self.backend.mkdir(host_id, meta.workdir)
            versions = dict(meta.versions)
            for index, step in enumerate(steps, start=2):
                progress(BuildStepStarted(index, total, step.name))
                where = {"index": index, "total": total, "name": step.name}
                match step:
                    case RunStep():
                        exec_spec = ExecSpec(
                            argv=step.argv, env=meta.env, cwd=meta.workdir, timeout_s=STEP_TIMEOUT_S
                        )
                        await self.run_step(host_id, exec_spec, where, progress)
                    case FilesStep():
                        for f in step.files:
                            await self.backend.mkdir(host_id, posixpath.dirname(f.path))
                            await self.backend.write_file(host_id, f.path, _once(f.content.encode()), f.mode)
                    case VersionsStep():
                        versions |= await self._versions(host_id, step.commands, meta, where)
            progress(BuildStepStarted(total - extra_steps, total, f"save the template {name}"))
            captured = await self.capture(host_id, replace(meta, versions=versions))
        finally:
            with anyio.CancelScope(shield=True):
                await self.backend.destroy(host_id)
        return captured

    async def start_shell(self, template: str) -> str:
        """Create a build shell from ``template`` (outbound network, the shared apt caches); its id.
        The caller destroys it, whatever happens."""
        host_id = new_id(BUILD_SHELL_PREFIX)
        shell = ShellSpec(
            host_id=host_id,
            template=template,
            shape=get_shape(BUILD_SHAPE),
            network=NetworkAccess(NetworkMode.INTERNET),
            cache_dirs=BUILD_CACHE_DIRS,
        )
        try:
            await self.backend.create(shell)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.backend.destroy(host_id)
            raise
        return host_id

    async def capture(
        self, host_id: str, meta: TemplateMeta, *, keep_workspace: bool = False
    ) -> TemplateMeta:
        """Capture the build shell as template ``meta.name``, with its /workspace if the build put
        anything there or ``keep_workspace`` (its parent had one: an image's, owned by its user);
        every shell started from it gets a copy."""
        seeded = keep_workspace or bool(await self.backend.list_dir(host_id, "/workspace"))
        return await self.backend.capture_template(host_id, meta, include_workspace=seeded)

    async def _exec(
        self, host_id: str, spec: ExecSpec, on_output: Callable[[str, bytes], None]
    ) -> ExecExit | None:
        ended: ExecExit | None = None
        async for event in self.backend.exec(host_id, spec):
            if isinstance(event, OutputChunk):
                on_output(event.stream, event.data)
            elif isinstance(event, ExecExit):
                ended = event
        return ended

    async def run_step(
        self, host_id: str, spec: ExecSpec, where: dict[str, object], progress: BuildProgress
    ) -> None:
        """Run one step's command, passing its output on; TemplateBuildFailed (naming ``where``, the
        step) if it fails or times out."""
        tail = ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def output(_: str, data: bytes) -> None:
            nonlocal tail
            text = decoder.decode(data)
            if text:
                tail = (tail + text)[-OUTPUT_TAIL_CHARS:]
                progress(BuildOutput(text))

        ended = await self._exec(host_id, spec, output)
        if ended is None or ended.exit_code != 0:
            code = None if ended is None else ended.exit_code
            how = "timed out" if ended is not None and ended.timed_out else f"failed with exit code {code}"
            line = f" at Dockerfile line {where['line']}" if "line" in where else ""
            raise TemplateBuildFailed(
                f"Build step {where['index']}/{where['total']} ({where['name']}){line} {how}; "
                "nothing was registered. Its output ends with:\n" + tail[-800:],
                {"step": where, "exit_code": code, "output": tail},
            )

    async def _versions(
        self, host_id: str, commands: dict[str, str], meta: TemplateMeta, where: dict[str, object]
    ) -> dict[str, str]:
        found = {}
        for key, command in commands.items():
            spec = ExecSpec(
                argv=("bash", "-o", "pipefail", "-c", command),
                env=meta.env,
                cwd=meta.workdir,
                timeout_s=VERSION_TIMEOUT_S,
            )
            out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
            ended = await self._exec(host_id, spec, partial(_append, out))
            printed = bytes(out["stdout"] or out["stderr"]).decode(errors="replace").strip().splitlines()
            if ended is None or ended.exit_code != 0 or not printed:
                both = bytes(out["stdout"] + out["stderr"]).decode(errors="replace")
                raise TemplateBuildFailed(
                    f"The version command for '{key}' ({command}) did not print a version; "
                    "nothing was registered.",
                    {"step": where, "exit_code": None if ended is None else ended.exit_code, "output": both},
                )
            found[key] = printed[0].strip()
        return found


def _append(sink: dict[str, bytearray], stream: str, data: bytes) -> None:
    sink[stream].extend(data)


async def _once(data: bytes) -> AsyncIterable[bytes]:
    yield data
