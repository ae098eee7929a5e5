"""Compile a rust or go snippet to a WASI module inside a throwaway container shell.

A compiler is untrusted input's first reader (``include_str!("/etc/passwd")`` is evaluated at
compile time), so it never runs on the host: each compile gets a fresh container shell from the
``wasm-build:1`` template (sealed network, the smallest shape), the source on stdin, and the result
is read back through the shell's agent, inside the container's own root (no host path is ever
resolved). The shell is destroyed afterwards whatever happened, and has no record, so a server
crash in between leaves an orphan the next start-up's reconciliation removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from ...domain.errors import PayloadTooLarge
from ...domain.execution import ExecExit, ExecSpec, OutputChunk
from ...domain.ids import new_id
from ...domain.isolation import Language
from ...domain.network import NetworkAccess, NetworkMode
from ...domain.shapes import DEFAULT_SHAPE, get_shape
from ...domain.templates import TemplateMeta
from ...domain.wasm_presets import BUILD_TEMPLATE
from ..backend import Backend, ShellSpec

OUTPUT = "/workspace/out.wasm"
MAX_MODULE_BYTES = 64 * 1024 * 1024

BUILD_SCRIPTS: dict[Language, str] = {
    Language.RUST: (
        "cd /workspace && cat > main.rs && "
        "rustc --edition 2021 -O -C strip=symbols -C linker=wasm-ld --target wasm32-wasip1 "
        "main.rs -o out.wasm"
    ),
    Language.GO: (
        "cd /workspace && cat > main.go && printf 'module main\\ngo 1.24\\n' > go.mod && "
        "GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local go build -trimpath -o out.wasm ."
    ),
}


@dataclass(frozen=True)
class Compiled:
    """A compile's result: the module, or the compiler's output and exit code when it failed."""

    module: bytes | None
    output: bytes
    exit_code: int
    duration_ms: float


class ContainerCompiler:
    def __init__(self, container: Backend) -> None:
        self.container = container

    def build_template(self) -> TemplateMeta | None:
        """The build template's metadata when it is ready on this host."""
        return self.container.template_meta(BUILD_TEMPLATE)

    async def compile(self, language: Language, source: bytes, timeout_s: float) -> Compiled:
        await self.container.ensure_template(BUILD_TEMPLATE, allow_build=False)
        spec = ShellSpec(
            host_id=new_id("sh"),
            template=BUILD_TEMPLATE,
            shape=get_shape(DEFAULT_SHAPE),
            network=NetworkAccess(mode=NetworkMode.SEALED),
        )
        started = anyio.current_time()
        await self.container.create(spec)
        try:
            output = bytearray()
            code = 125
            run = ExecSpec(argv=("bash", "-c", BUILD_SCRIPTS[language]), stdin=source, timeout_s=timeout_s)
            async for event in self.container.exec(spec.host_id, run):
                if isinstance(event, OutputChunk):
                    output.extend(event.data)
                elif isinstance(event, ExecExit):
                    code = event.exit_code
            module = None
            if code == 0:
                module = bytearray()
                async for chunk in self.container.read_file(spec.host_id, OUTPUT, MAX_MODULE_BYTES):
                    module.extend(chunk)
                    if len(module) > MAX_MODULE_BYTES:
                        raise PayloadTooLarge(
                            f"The compiled module is larger than {MAX_MODULE_BYTES >> 20} MiB."
                        )
            elapsed = (anyio.current_time() - started) * 1000
            return Compiled(bytes(module) if module is not None else None, bytes(output), code, elapsed)
        finally:
            with anyio.CancelScope(shield=True):
                await self.container.destroy(spec.host_id)
