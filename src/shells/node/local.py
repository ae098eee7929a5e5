"""The node of this machine, built once: the host's pool and network, handed to each backend."""

from __future__ import annotations

import logging

from ..domain.errors import InvalidRequest
from ..domain.isolation import Runtime
from ..runtime.backend import Backend
from ..runtime.container.backend import ContainerBackend, host_pool
from ..runtime.microvm.backend import MicrovmBackend
from ..runtime.network.dataplane import HostNetwork
from ..runtime.volumes import PoolVolumes
from ..runtime.wasm.backend import WasmBackend
from ..runtime.wasm.compiler import ContainerCompiler
from ..settings import Settings
from . import Node

log = logging.getLogger(__name__)


def local_node(settings: Settings) -> Node:
    """Every isolation class this host can run (or those ``settings.classes`` names), over one
    pool and one network."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pool = host_pool(settings)
    network = HostNetwork(settings)
    container = ContainerBackend(settings, pool=pool, network=network)
    backends: list[Backend] = [container, WasmBackend(settings, pool, ContainerCompiler(container))]
    wanted = set(settings.classes)
    unknown = wanted - {r.value for r in Runtime}
    if unknown:
        raise InvalidRequest(
            f"SHELLS_CLASSES names no isolation class {', '.join(sorted(unknown))}; "
            f"use some of: {', '.join(r.value for r in Runtime)}."
        )
    if not wanted or Runtime.MICROVM.value in wanted:
        missing = MicrovmBackend.available()
        if missing is None:
            backends.append(MicrovmBackend(settings, container))
        else:
            log.warning("no microvm class on this host: %s", missing)
    if wanted:  # the container class always runs: the others build on its pool and templates
        backends = [b for b in backends if b is container or b.runtime.value in wanted]
    return Node(settings.node_name, backends, network, PoolVolumes(pool))
